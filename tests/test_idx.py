"""The IDX reader on tiny files written by the test."""

import gzip
import struct

import numpy as np
import pytest

from faults import fault

from highway_study.data.idx import IdxError, read_idx


def idx_bytes(array: np.ndarray, type_code=0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(">u1" if type_code == 0x08 else ">i4").tobytes()


@pytest.fixture
def images():
    return np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)


def test_reads_raw_file(tmp_path, images):
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(idx_bytes(images))
    result = read_idx(path)
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, images)


def test_reads_gzip_file(tmp_path, images):
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(images)))
    np.testing.assert_array_equal(read_idx(path), images)


def test_reads_big_endian_int32(tmp_path):
    labels = np.array([1, -2, 70000], dtype=np.int32)
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(labels, type_code=0x0C))
    np.testing.assert_array_equal(read_idx(path), labels)


@fault("an IDX file (raw or gzip) cut short", "`python -m highway_study data=mnist` with such a file",
       "`IdxError` naming the file: truncated or corrupt; the run ends with status failed, exit 1")
@pytest.mark.parametrize("compress", [False, True])
def test_truncated_file_is_rejected_naming_the_file(tmp_path, images, compress):
    data = idx_bytes(images)[:-5]
    path = tmp_path / ("short.gz" if compress else "short")
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(IdxError, match="short.*truncated or corrupt"):
        read_idx(path)


@fault("a gzip IDX file cut off mid-stream", "`python -m highway_study data=mnist` with such a file",
       "one sentence naming the file, quoting no made-up size")
def test_gzip_cut_off_mid_stream_quotes_no_made_up_size(tmp_path, images):
    """A cut gzip file has no trailer: its last 4 bytes are compressed data, not a size."""
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(idx_bytes(images))[:40])
    with pytest.raises(IdxError) as error:
        read_idx(path)
    assert "cut.gz" in str(error.value) and "holds" not in str(error.value)
    assert "gzip trailer does not match: it is truncated or corrupt." in str(error.value)


@fault("a file that is not IDX (wrong magic number)", "`python -m highway_study data=mnist` with such a file",
       "one sentence: `FILE is not an IDX file: wrong magic number ...`")
def test_wrong_magic_is_rejected(tmp_path, images):
    path = tmp_path / "notidx"
    path.write_bytes(b"\x50\x4b\x03\x04" + idx_bytes(images)[4:])
    with pytest.raises(IdxError, match="notidx is not an IDX file: wrong magic"):
        read_idx(path)


@fault("an IDX header claiming a huge shape", "`python -m highway_study data=mnist` with such a file",
       "rejected before any data is read or memory allocated")
def test_header_claiming_huge_size_is_rejected_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "huge"
    path.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 60000, 4000, 4000) + b"\0" * 10)
    monkeypatch.setattr("highway_study.data.idx._read_exactly",
                        lambda *a: pytest.fail("data read despite a bad header"))
    with pytest.raises(IdxError, match="huge has a header for shape"):
        read_idx(path)


@fault("an IDX file with data beyond its header's shape", "`python -m highway_study data=mnist` with such a file",
       "one sentence naming the file: corrupt")
def test_extra_trailing_data_is_rejected(tmp_path, images):
    path = tmp_path / "long.gz"
    path.write_bytes(gzip.compress(idx_bytes(images) + b"extra"))
    with pytest.raises(IdxError, match="long.gz"):
        read_idx(path)


@fault("a corrupt gzip stream", "`python -m highway_study data=mnist` with such a file",
       "one sentence naming the file")
def test_corrupt_gzip_is_rejected(tmp_path, images):
    data = bytearray(gzip.compress(idx_bytes(images)))
    data[12:20] = b"\xff" * 8
    path = tmp_path / "bad.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(IdxError, match="bad.gz"):
        read_idx(path)


@fault("an empty IDX file", "`python -m highway_study data=mnist` with such a file",
       "one sentence naming the file")
def test_empty_file_is_rejected(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    with pytest.raises(IdxError, match="empty"):
        read_idx(path)
