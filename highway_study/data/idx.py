"""Reader for the IDX format of the MNIST files (raw or gzip-compressed).

The header is checked against the file's real size before the data is read, so a corrupt
header can neither allocate a huge array nor yield a silently short one.
"""

from __future__ import annotations

import gzip
import zlib
import struct
from pathlib import Path

import numpy as np

_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CHUNK = 1 << 20


class IdxError(ValueError):
    """A file that is not a readable IDX file; the message names the file."""


def read_idx(path) -> np.ndarray:
    """Return the array stored in an IDX file (`.gz` files are decompressed)."""
    path = Path(path)
    try:
        if _is_gzip(path):
            with gzip.open(path, "rb") as stream:
                return _read(stream, path, _gzip_payload_size(path), modulus=1 << 32)
        with open(path, "rb") as stream:
            return _read(stream, path, path.stat().st_size, modulus=None)
    except (OSError, EOFError, zlib.error) as error:
        raise IdxError(f"{path} could not be read as an IDX file: {error}.") from error


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as stream:
        return stream.read(2) == b"\x1f\x8b"


def _gzip_payload_size(path: Path) -> int:
    """Decompressed size from the gzip trailer (modulo 2**32, exact for MNIST's files)."""
    with open(path, "rb") as stream:
        stream.seek(-4, 2)
        return struct.unpack("<I", stream.read(4))[0]


def _read(stream, path: Path, total_size: int, modulus) -> np.ndarray:
    """Parse header and data; `total_size` is known exactly, or modulo `modulus` (gzip)."""
    magic = stream.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _DTYPES:
        raise IdxError(f"{path} is not an IDX file: wrong magic number {magic.hex() or 'empty'}.")
    dtype, ndim = _DTYPES[magic[2]], magic[3]
    header = stream.read(4 * ndim)
    if len(header) < 4 * ndim:
        raise IdxError(f"{path} is truncated inside its header.")
    shape = struct.unpack(f">{ndim}I", header)
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    claimed_size = 4 + 4 * ndim + expected
    if modulus:
        claimed_size %= modulus
    if claimed_size != total_size:
        # A gzip file's size comes from its trailer, which a truncated file does not have:
        # its last 4 bytes are then arbitrary, so no byte count is quoted for it.
        holds = ("its gzip trailer does not match" if modulus
                 else f"the file holds {total_size - 4 - 4 * ndim}")
        raise IdxError(
            f"{path} has a header for shape {shape} ({expected} data bytes) but {holds}: "
            "it is truncated or corrupt."
        )
    data = _read_exactly(stream, expected, path)
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _read_exactly(stream, size: int, path: Path) -> bytes:
    chunks, remaining = [], size
    while remaining > 0:
        chunk = stream.read(min(_CHUNK, remaining))
        if not chunk:
            raise IdxError(f"{path} is truncated: {size - remaining} of {size} data bytes present.")
        chunks.append(chunk)
        remaining -= len(chunk)
    if stream.read(1):
        raise IdxError(f"{path} has data beyond what its header describes: the file is corrupt.")
    return b"".join(chunks)
