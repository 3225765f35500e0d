"""MNIST: find its four IDX files (explicit folder, $HIGHWAY_STUDY_DATA, cache, download), load them.

Downloads go to the cache once, from the first public mirror that answers, and every file
is verified by the MD5 of its decompressed bytes (the published checksums), so a
recompressed copy is accepted and a corrupt one is not.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from highway_study.data.dataset import Dataset, split
from highway_study.data.idx import read_idx

ENV_VAR = "HIGHWAY_STUDY_DATA"

# MD5 of the decompressed files (LeCun, Cortes, Burges).
CHECKSUMS = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


class DataNotFoundError(FileNotFoundError):
    """MNIST is nowhere to be found and cannot be downloaded; the message says what to do."""


class ChecksumError(ValueError):
    """A file whose decompressed bytes do not match the published checksum."""


def cache_dir() -> Path:
    """The user cache folder for MNIST (XDG_CACHE_HOME honoured)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "highway_study" / "mnist"


def candidate_dirs(explicit_path=None) -> list[Path]:
    """The folders searched, in order."""
    dirs = []
    if explicit_path:
        dirs.append(Path(explicit_path).expanduser())
    env = os.environ.get(ENV_VAR)
    if env:
        dirs += [Path(env).expanduser() / "mnist", Path(env).expanduser()]
    dirs.append(cache_dir())
    return dirs


def find_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def locate(explicit_path=None, download: bool = True, mirrors=MIRRORS, checksums=CHECKSUMS):
    """Return {name: path} of the four files, downloading them into the cache if needed."""
    searched = candidate_dirs(explicit_path)
    for folder in searched:
        found = {name: find_file(folder, name) for name in checksums}
        if all(found.values()):
            return found
    if explicit_path and not download:
        searched = searched[:1]
    if download:
        try:
            return fetch_into(cache_dir(), mirrors, checksums)
        except OSError as error:
            reason = f" Download failed: {error}."
    else:
        reason = " Download is off (data.download=false)."
    where = ", ".join(str(folder) for folder in searched)
    raise DataNotFoundError(
        f"MNIST's four IDX files were not found in {where}.{reason} Put "
        f"{', '.join(n + '.gz' for n in checksums)} in one of those folders, pass "
        f"data.path=FOLDER, or set {ENV_VAR}=FOLDER."
    )


def fetch_into(folder: Path, mirrors, checksums) -> dict:
    """Download every file missing from `folder`, verify it, and move it in atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, md5 in checksums.items():
        existing = find_file(folder, name)
        if existing is None:
            existing = _download_one(folder, f"{name}.gz", md5, mirrors)
        paths[name] = existing
    return paths


def _download_one(folder: Path, filename: str, md5: str, mirrors) -> Path:
    errors = []
    for mirror in mirrors:
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".part", delete=False) as part:
            try:
                with urllib.request.urlopen(mirror + filename, timeout=30) as response:
                    shutil.copyfileobj(response, part)
                part.close()
                verify(Path(part.name), md5)
            except (OSError, ChecksumError) as error:
                errors.append(f"{mirror}: {error}")
                os.unlink(part.name)
                continue
        target = folder / filename
        os.replace(part.name, target)
        return target
    raise OSError(f"no mirror gave a valid {filename} ({'; '.join(errors)})")


def verify(path: Path, md5: str) -> None:
    """Raise ChecksumError unless the decompressed bytes of `path` have this MD5."""
    digest = hashlib.md5()
    with open(path, "rb") as stream:
        opener = gzip.open if stream.read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != md5:
        raise ChecksumError(
            f"{path} does not match the published checksum (MD5 {digest.hexdigest()}, "
            f"expected {md5}): delete it so that it is fetched again."
        )


def load(cfg, seed: int) -> Dataset:
    """MNIST from the IDX files `locate` finds; `cfg.val_size` training images held out."""
    files = locate(cfg.path, download=cfg.download)
    arrays = {name: read_idx(path) for name, path in files.items()}
    x_train = _images(arrays["train-images-idx3-ubyte"])
    y_train = arrays["train-labels-idx1-ubyte"].astype(np.int32)
    x_test = _images(arrays["t10k-images-idx3-ubyte"])
    y_test = arrays["t10k-labels-idx1-ubyte"].astype(np.int32)
    x_train, y_train, x_val, y_val = split(x_train, y_train, cfg.val_size, seed)
    return Dataset(x_train, y_train, x_val, y_val, x_test, y_test, 10, (28, 28, 1))


def _images(raw: np.ndarray) -> np.ndarray:
    return (raw.reshape(len(raw), -1) / 255.0).astype(np.float32)
