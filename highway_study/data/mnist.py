"""MNIST: find its four IDX files (explicit folder, $HIGHWAY_STUDY_DATA, cache, download), load them.

An explicit folder (`data.path`) is the only place looked at: it must exist and hold the
files. Downloads go to the cache once, from the first public mirror that answers. Every
file, downloaded or found, is verified by the MD5 of its decompressed bytes (the published
checksums), so a recompressed copy is accepted and a corrupt one is not; a file found
verified is remembered (path, size, modification time) in the user cache, so it is hashed
once, not at every run.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from highway_study.data.dataset import Dataset, DataError, split
from highway_study.data.idx import read_idx

log = logging.getLogger("highway_study")
ENV_VAR = "HIGHWAY_STUDY_DATA"
VERIFIED_FILE = "verified.json"  # in the cache's parent: files whose checksums matched

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
    """The folders searched, in order: the explicit one alone, else the environment's, then
    the cache."""
    if explicit_path:
        return [Path(explicit_path).expanduser()]
    dirs = []
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
    """Return {name: path} of the four files, downloading them into the cache if needed.

    An explicit path is the only folder looked at (no download): a typo must not silently
    train on the files of another folder.
    """
    searched = candidate_dirs(explicit_path)
    for folder in searched:
        found = {name: find_file(folder, name) for name in checksums}
        if all(found.values()):
            return found
    if explicit_path:
        folder = searched[0]
        problem = ("that folder does not exist" if not folder.is_dir() else "it lacks " + ", ".join(
            f"{name}.gz" for name, path in found.items() if path is None))
        raise DataNotFoundError(
            f"MNIST's four IDX files were not found in {folder} (data.path): {problem}; pass "
            f"the folder that holds them, or leave data.path unset to search ${ENV_VAR} and "
            "the cache (downloading into it)."
        )
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
            f"expected {md5}): replace it with the original file (one in the cache is "
            "fetched again once deleted)."
        )


def verify_once(files: dict, checksums=CHECKSUMS) -> None:
    """Verify every file not yet known to match its checksum; remember the ones that do.

    A file is known by its resolved path, size and modification time, so a replaced or
    modified file is hashed again. Remembering is skipped where the cache cannot be written.
    """
    memory_path = cache_dir().parent / VERIFIED_FILE
    try:
        memory = json.loads(memory_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memory = {}
    if not isinstance(memory, dict):
        memory = {}
    changed = False
    for name, path in files.items():
        stat = Path(path).stat()
        key, entry = str(Path(path).resolve()), [stat.st_size, stat.st_mtime_ns, checksums[name]]
        if memory.get(key) == entry:
            continue
        verify(Path(path), checksums[name])
        memory[key], changed = entry, True
    if changed:
        try:
            memory_path.parent.mkdir(parents=True, exist_ok=True)
            partial = memory_path.with_name(f".{VERIFIED_FILE}.{os.getpid()}.tmp")
            partial.write_text(json.dumps(memory, indent=1), encoding="utf-8")
            os.replace(partial, memory_path)
        except OSError as error:
            log.debug("could not remember verified MNIST files: %s", error)


def load(cfg, seed: int) -> Dataset:
    """MNIST from the IDX files `locate` finds; `cfg.val_size` training images held out."""
    files = locate(cfg.path, download=cfg.download, checksums=CHECKSUMS)
    verify_once(files, CHECKSUMS)
    arrays = {name: read_idx(path) for name, path in files.items()}
    for images, labels in (("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                           ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")):
        if len(arrays[images]) != len(arrays[labels]):
            raise DataError(
                f"{files[labels]} holds {len(arrays[labels])} labels but {files[images]} holds "
                f"{len(arrays[images])} images: the files do not belong together; replace them "
                "with the original MNIST files."
            )
    x_train = _images(arrays["train-images-idx3-ubyte"])
    y_train = arrays["train-labels-idx1-ubyte"].astype(np.int32)
    x_test = _images(arrays["t10k-images-idx3-ubyte"])
    y_test = arrays["t10k-labels-idx1-ubyte"].astype(np.int32)
    x_train, y_train, x_val, y_val = split(x_train, y_train, cfg.val_size, seed, "data.val_size")
    source = str(Path(files["train-images-idx3-ubyte"]).parent)
    return Dataset(x_train, y_train, x_val, y_val, x_test, y_test, 10, (28, 28, 1), source)


def _images(raw: np.ndarray) -> np.ndarray:
    return (raw.reshape(len(raw), -1) / 255.0).astype(np.float32)
