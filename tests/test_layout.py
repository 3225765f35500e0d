"""The architecture holds: import rules, the catalog as the one place that names a model,
a model added the documented way goes through a run, a sweep and the analysis, and the
configs travel with an installed wheel."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis.__main__ import main as analyse
from conftest import REPO
from highway_study import catalog


def test_import_contracts_hold():
    """pyproject.toml's import-linter contracts: no cycles, layers one way, analysis free of
    TensorFlow and training code, nothing importing the speed tooling."""
    lint_imports = Path(sys.executable).with_name("lint-imports")  # import-linter's command
    result = subprocess.run([str(lint_imports)], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout and "0 broken" in result.stdout


def _string_constants(path: Path) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


# Model names that are not also family names (shallow and softmax are both).
_MODEL_ONLY_NAMES = [n for n in catalog.names() if n not in catalog.FAMILIES]


@pytest.mark.parametrize("name", _MODEL_ONLY_NAMES)
def test_only_the_catalog_and_the_models_builder_name_a_model(name):
    """No code outside catalog.py and the model's own builder module tests a model's name:
    everything else asks the catalog what the model is."""
    builder = REPO / "highway_study" / "models" / f"{catalog.spec(name).builder}.py"
    allowed = {REPO / "highway_study" / "catalog.py", builder}
    naming = {path for folder in ("highway_study", "analysis")
              for path in (REPO / folder).rglob("*.py")
              if "bench" not in path.parts and name in _string_constants(path)}
    assert naming <= allowed, sorted(str(p.relative_to(REPO)) for p in naming - allowed)


def test_every_catalog_model_has_its_yaml_and_builder():
    for name, spec in catalog.MODELS.items():
        assert (REPO / "conf" / "model" / f"{name}.yaml").exists(), name
        assert (REPO / "highway_study" / "models" / f"{spec.builder}.py").exists(), name


def test_a_model_added_the_documented_way_runs_sweeps_and_is_analysed(tmp_path):
    """residual_fc was added as one builder module, one YAML file and one catalog entry;
    a sweep trains it beside highway_fc and plain_fc, and the analysis groups it by its
    family."""
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, "-m", "highway_study", "-m", "model=residual_fc,highway_fc,plain_fc",
         "depth=1,3", "data=synthetic", "width=8", "epochs=1", "tensorboard=false",
         f"hydra.sweep.dir={sweep}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "6/6 runs done, 0 failed" in result.stdout + result.stderr
    out = tmp_path / "analysis"
    assert analyse([str(sweep), "--out", str(out)]) == 0
    runs = pd.read_csv(out / "runs.csv")
    residual = runs[runs["model"] == "residual_fc"]
    assert len(residual) == 2 and set(residual["family"]) == {"residual"}
    assert set(residual["status"]) == {"completed"}
    assert residual["effective_depth"].isna().all()  # no gates, so no gate figures for it
    report = (out / "report.md").read_text()
    assert "| depth | plain | highway (best carry_bias) | residual |" in report  # question 1
    assert (out / "figures" / "accuracy_heatmap.png").exists()


def test_an_installed_wheel_carries_its_configs_and_runs(tmp_path):
    """`pip install .` (not editable) must run `python -m highway_study`: the YAML files
    travel in the wheel as highway_study.conf."""
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                            str(wheels), str(REPO)], capture_output=True, text=True,
                           timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    site = tmp_path / "site"
    (wheel,) = wheels.glob("highway_study-*.whl")
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                              "--target", str(site), str(wheel)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    assert (site / "highway_study" / "conf" / "model" / "residual_fc.yaml").exists()
    env = {**os.environ, "PYTHONPATH": str(site), "TF_CPP_MIN_LOG_LEVEL": "2"}
    where = subprocess.run([sys.executable, "-c", "import highway_study; "
                            "print(highway_study.__file__)"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr
    run = subprocess.run([sys.executable, "-m", "highway_study", "data=synthetic", "depth=1",
                          "width=8", "epochs=1", "tensorboard=false", "hydra.run.dir=run"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "run" / "summary.json").exists()
