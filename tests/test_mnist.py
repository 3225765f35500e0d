"""Finding, downloading, verifying and loading MNIST, all offline."""

import gzip
import hashlib
import shutil

import numpy as np
import pytest

from highway_study import data
from highway_study.data import mnist
from test_idx import idx_bytes

NAMES = list(mnist.CHECKSUMS)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(mnist.ENV_VAR, raising=False)


def fake_mirror(folder, corrupt=None):
    """Write four tiny IDX files as a mirror; return their MD5s (of decompressed bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    checksums = {}
    for index, name in enumerate(NAMES):
        payload = idx_bytes(np.full((3, 2), index, np.uint8))
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


def test_corrupt_download_is_rejected_and_not_cached(tmp_path):
    checksums = fake_mirror(tmp_path / "mirror", corrupt=NAMES[1])
    mirrors = [(tmp_path / "mirror").as_uri() + "/"]
    with pytest.raises(mnist.DataNotFoundError, match="does not match the published checksum"):
        mnist.locate(download=True, mirrors=mirrors, checksums=checksums)
    cached = sorted(p.name for p in mnist.cache_dir().iterdir())
    assert f"{NAMES[1]}.gz" not in cached and not any(n.endswith(".part") for n in cached)


def test_offline_and_missing_says_where_it_looked_and_what_to_do(tmp_path):
    with pytest.raises(mnist.DataNotFoundError) as error:
        mnist.locate(tmp_path / "nowhere", download=True, mirrors=["file:///nonexistent/"])
    message = str(error.value)
    assert str(tmp_path / "nowhere") in message and str(mnist.cache_dir()) in message
    assert "data.path=FOLDER" in message and mnist.ENV_VAR in message


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
