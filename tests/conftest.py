"""Shared test fixtures: quiet TensorFlow, where real MNIST lives, how to run the CLI."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]


def real_mnist_root() -> Path | None:
    """The folder holding mnist/ (or the IDX files), from $HIGHWAY_STUDY_DATA or ../shared/data."""
    for candidate in (os.environ.get("HIGHWAY_STUDY_DATA"), REPO.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "mnist" / "train-images-idx3-ubyte.gz").exists():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def mnist_root():
    """Session-scoped, so it reads $HIGHWAY_STUDY_DATA before any test's fixtures (such as
    test_mnist's isolated cache, which removes the variable) change the environment."""
    root = real_mnist_root()
    if root is None:
        pytest.skip("real MNIST not available (set HIGHWAY_STUDY_DATA)")
    return root


@pytest.fixture
def run_cli():
    """Run `python -m highway_study ARGS` in the repo; returns the CompletedProcess."""

    def run(*args, env=None, timeout=300):
        full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "highway_study", *args],
            cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout,
        )

    return run
