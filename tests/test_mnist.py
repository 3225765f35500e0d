"""Finding, downloading, verifying and loading MNIST, all offline."""

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import REPO
from faults import fault
from highway_study import data
from highway_study.data import mnist
from highway_study.data.dataset import DataError
from test_idx import idx_bytes

NAMES = list(mnist.CHECKSUMS)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(mnist.ENV_VAR, raising=False)


def fake_mirror(folder, corrupt=None, counts=None):
    """Write four tiny IDX files as a mirror; return their MD5s (of decompressed bytes).

    `counts`: {name: number of items} to make some file hold more or fewer than 3.
    """
    folder.mkdir(parents=True, exist_ok=True)
    checksums = {}
    for index, name in enumerate(NAMES):
        count = (counts or {}).get(name, 3)
        shape = (count, 2, 2) if "images" in name else (count,)
        payload = idx_bytes(np.full(shape, index, np.uint8))
        checksums[name] = hashlib.md5(payload).hexdigest()
        if name == corrupt:
            payload = payload[:-1] + b"\x07"
        (folder / f"{name}.gz").write_bytes(gzip.compress(payload))
    return checksums


def test_explicit_path_wins_over_env_and_cache(tmp_path, monkeypatch):
    checksums = fake_mirror(tmp_path / "explicit")
    fake_mirror(tmp_path / "env")
    monkeypatch.setenv(mnist.ENV_VAR, str(tmp_path / "env"))
    found = mnist.locate(tmp_path / "explicit", download=False, checksums=checksums)
    assert all(path.parent == tmp_path / "explicit" for path in found.values())


def test_env_folder_and_its_mnist_subfolder_are_searched(tmp_path, monkeypatch):
    checksums = fake_mirror(tmp_path / "data" / "mnist")
    monkeypatch.setenv(mnist.ENV_VAR, str(tmp_path / "data"))
    found = mnist.locate(download=False, checksums=checksums)
    assert all(path.parent == tmp_path / "data" / "mnist" for path in found.values())


def test_downloads_once_into_cache_and_verifies(tmp_path, monkeypatch):
    checksums = fake_mirror(tmp_path / "mirror")
    mirrors = ["file:///nonexistent/mirror/", (tmp_path / "mirror").as_uri() + "/"]
    found = mnist.locate(download=True, mirrors=mirrors, checksums=checksums)
    assert all(path.parent == mnist.cache_dir() for path in found.values())
    shutil.rmtree(tmp_path / "mirror")  # a second call must not need the network
    again = mnist.locate(download=True, mirrors=mirrors, checksums=checksums)
    assert again == found


@fault("a download whose bytes do not match MNIST's published MD5", "`python -m highway_study data=mnist` (first run, downloading)",
       "the file is rejected, never cached (no .part left); the next mirror is tried; exit 1 in one sentence if none is good")
def test_corrupt_download_is_rejected_and_not_cached(tmp_path):
    checksums = fake_mirror(tmp_path / "mirror", corrupt=NAMES[1])
    mirrors = [(tmp_path / "mirror").as_uri() + "/"]
    with pytest.raises(mnist.DataNotFoundError, match="does not match the published checksum"):
        mnist.locate(download=True, mirrors=mirrors, checksums=checksums)
    cached = sorted(p.name for p in mnist.cache_dir().iterdir())
    assert f"{NAMES[1]}.gz" not in cached and not any(n.endswith(".part") for n in cached)


def test_offline_and_missing_says_where_it_looked_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv(mnist.ENV_VAR, str(tmp_path / "env"))
    with pytest.raises(mnist.DataNotFoundError) as error:
        mnist.locate(download=True, mirrors=["file:///nonexistent/"])
    message = str(error.value)
    assert str(tmp_path / "env") in message and str(mnist.cache_dir()) in message
    assert "data.path=FOLDER" in message and mnist.ENV_VAR in message


@fault("`data.path=FOLDER` that does not exist (or lacks the files) while the cache has MNIST",
       "`python -m highway_study data=mnist data.path=/typo`",
       "exit 1: one sentence naming the folder and what it lacks; the cache is not used")
def test_an_explicit_path_is_the_only_place_looked_at(tmp_path):
    checksums = fake_mirror(mnist.cache_dir())  # the cache holds a good copy
    for folder, problem in [(tmp_path / "typo", "that folder does not exist"),
                            (tmp_path, "it lacks train-images-idx3-ubyte.gz")]:
        with pytest.raises(mnist.DataNotFoundError) as error:
            mnist.locate(folder, download=True, checksums=checksums)
        message = str(error.value)
        assert f"not found in {folder} (data.path): {problem}" in message
        assert message.count("\n") == 0
    assert mnist.locate(None, download=False, checksums=checksums)  # without it: the cache


def fake_cfg(folder, val_size=1):
    return SimpleNamespace(name="mnist", path=str(folder), download=False, val_size=val_size,
                           train_limit=None)


@fault("MNIST files found locally (data.path, $HIGHWAY_STUDY_DATA, cache) that are corrupt",
       "`python -m highway_study data=mnist` (twice)",
       "the first run checks their MD5 and remembers the verified files (path, size, mtime): "
       "a corrupt file ends in one sentence; later runs hash nothing unless a file changed")
def test_local_files_are_verified_once_and_remembered(tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    monkeypatch.setattr(mnist, "CHECKSUMS", fake_mirror(folder))
    verified = []
    real_verify = mnist.verify
    monkeypatch.setattr(mnist, "verify", lambda path, md5: (verified.append(path.name),
                                                            real_verify(path, md5)))
    dataset = data.load(fake_cfg(folder), seed=0)
    assert len(verified) == 4 and dataset.source == str(folder)
    data.load(fake_cfg(folder), seed=0)
    assert len(verified) == 4  # remembered: not hashed again
    touched = folder / f"{NAMES[1]}.gz"
    os.utime(touched, ns=(1, 1))
    data.load(fake_cfg(folder), seed=0)
    assert verified[4:] == [touched.name]  # a changed file is hashed again

    payload = bytearray(gzip.decompress(touched.read_bytes()))
    payload[-1] ^= 1
    touched.write_bytes(gzip.compress(bytes(payload)))
    with pytest.raises(mnist.ChecksumError, match="does not match the published checksum"):
        data.load(fake_cfg(folder), seed=0)


@fault("an MNIST label file whose count differs from its image file (train or test)",
       "`python -m highway_study data=mnist data.path=FOLDER`",
       "exit 1 at load, before training: one sentence naming both files and their counts")
@pytest.mark.parametrize("labels", ["train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"])
def test_labels_that_do_not_match_their_images_are_refused_at_load(tmp_path, monkeypatch, labels):
    folder = tmp_path / "mine"
    monkeypatch.setattr(mnist, "CHECKSUMS", fake_mirror(folder, counts={labels: 2}))
    with pytest.raises(DataError) as error:
        data.load(fake_cfg(folder), seed=0)
    message = str(error.value)
    assert f"{labels}.gz holds 2 labels but" in message and "holds 3 images" in message


@fault("`data.val_size` or `data.test_size` too large for the data",
       "`python -m highway_study data.val_size=1700` (digits: 1,437 left after the test set)",
       "exit 1 at load: `data.val_size=1700 is not allowed for these data: only 1437 examples "
       "are left to split, so use a value from 1 to 1436.`")
@pytest.mark.parametrize("name, key, size, left", [
    ("digits", "val_size", 1700, 1437), ("digits", "test_size", 1797, 1797),
    ("mnist", "val_size", 4, 3)])
def test_a_split_larger_than_the_data_is_one_sentence(tmp_path, monkeypatch, name, key, size,
                                                     left):
    if name == "mnist":
        folder = tmp_path / "mine"
        monkeypatch.setattr(mnist, "CHECKSUMS", fake_mirror(folder))
        cfg = fake_cfg(folder, val_size=size)
    else:
        cfg = SimpleNamespace(name=name, val_size=180, test_size=360, train_limit=None)
        setattr(cfg, key, size)
    with pytest.raises(DataError) as error:
        data.load(cfg, seed=0)
    assert str(error.value) == (f"data.{key}={size} is not allowed for these data: only {left} "
                                f"examples are left to split, so use a value from 1 to "
                                f"{left - 1}.")


@fault("MNIST nowhere and `data.download=false` (or offline)", "`python -m highway_study data=mnist data.download=false`",
       "exit 1: one sentence saying where it looked and how to supply the files; summary.json says failed")
def test_cli_reports_missing_mnist_in_one_sentence(run_cli, tmp_path):
    result = run_cli("data=mnist", f"data.path={tmp_path}/none", "data.download=false",
                     f"hydra.run.dir={tmp_path}/run", env={"XDG_CACHE_HOME": str(tmp_path)})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "MNIST's four IDX files were not found in" in result.stderr
    assert '"status": "failed"' in (tmp_path / "run" / "summary.json").read_text()


def test_real_mnist_loads_with_a_seeded_validation_split(mnist_root, monkeypatch):
    monkeypatch.setenv(mnist.ENV_VAR, str(mnist_root))
    cfg = type("Cfg", (), dict(name="mnist", path=None, download=False, val_size=5000,
                               train_limit=None))
    first, second = data.load(cfg, seed=3), data.load(cfg, seed=3)
    assert first.x_train.shape == (55000, 784) and first.x_val.shape == (5000, 784)
    assert first.x_test.shape == (10000, 784) and first.image_shape == (28, 28, 1)
    assert 0.0 <= first.x_train.min() and first.x_train.max() <= 1.0
    np.testing.assert_array_equal(first.y_val, second.y_val)
    labels = np.concatenate([first.y_train, first.y_val])
    assert np.bincount(labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265,
                                            5851, 5949]
    assert np.bincount(first.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028,
                                                  974, 1009]


def test_published_checksums_match_the_real_files(mnist_root):
    for name, md5 in mnist.CHECKSUMS.items():
        mnist.verify(mnist_root / "mnist" / f"{name}.gz", md5)


@fault("real-MNIST tests where MNIST comes from $HIGHWAY_STUDY_DATA only",
       "`HIGHWAY_STUDY_DATA=DIR python -m pytest tests/test_mnist.py` in a clone without "
       "../shared/data", "the real-MNIST tests run instead of skipping")
def test_real_mnist_tests_run_when_the_data_comes_from_the_environment(mnist_root, tmp_path):
    clone = tmp_path / "clone"  # a checkout with no ../shared/data beside it
    (clone / "tests").mkdir(parents=True)
    for name in ("conftest.py", "compose.py", "faults.py", "test_idx.py", "test_mnist.py"):
        shutil.copy(REPO / "tests" / name, clone / "tests" / name)
    env = {**os.environ, mnist.ENV_VAR: str(mnist_root), "XDG_CACHE_HOME": str(tmp_path / "c")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         str(clone / "tests" / "test_mnist.py"), "-k", "published_checksums or seeded_validation"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert "2 passed" in result.stdout and "skipped" not in result.stdout, result.stdout[-2000:]
