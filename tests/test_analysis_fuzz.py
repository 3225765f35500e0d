"""The analysis against generated run records (Hypothesis): whatever a folder holds, it reads
what it can, skips what it cannot with one warning line per skipped run, and never ends in a
traceback.

The generator writes folders of a few runs: summary.json with fields missing, of the wrong
type, NaN or infinite, numbers as strings, null or odd config values (model, data, depth,
max_steps, ...); metrics.jsonl and curve.jsonl with garbage, truncated, non-UTF-8 and
non-object lines and rows of the wrong types; runs that completed, diverged, failed or were
interrupted; files that cannot be read. Each run is tagged `clean` when everything in it is
usable (a number as a string, NaN and garbage lines included): such a run must be in runs.csv.
The contract checked on every example:

- `main` returns 0 with report.md and runs.csv, or 1 with one sentence on stderr when no
  run is usable; it never raises;
- every run is either in runs.csv or named once in the skipped-folders warning, never both;
- every clean run is read.

Every fault it found is kept as a named test with its minimal input in
tests/test_analysis_mixtures.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
import warnings
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.__main__ import main

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# (value, clean): clean values are ones the analysis must read.
_accuracy = st.floats(0, 1)
CLEAN_NUMBER = st.one_of(
    _accuracy, st.none(), st.just(math.nan), st.just(math.inf), st.integers(0, 5),
    _accuracy.map(repr),  # "0.93": a number as a string
)
BAD_NUMBER = st.one_of(
    st.sampled_from(["high", "", "0.9.1", "nan%"]), st.booleans(), st.lists(_accuracy, max_size=2),
    st.just({"value": 0.5}),
)


@st.composite
def tagged(draw, clean, bad=None):
    """(value, True) from `clean`, or about one time in ten (value, False) from `bad`."""
    if bad is not None and draw(st.sampled_from([False] * 9 + [True])):
        return draw(bad), False
    return draw(clean), True


def number(bad: bool):
    return tagged(CLEAN_NUMBER, BAD_NUMBER if bad else None)


def gates(bad: bool):
    return tagged(st.one_of(st.lists(CLEAN_NUMBER, max_size=4), st.none()),
                  st.one_of(st.just("0.3,0.2"), st.just(0.5),
                            st.lists(BAD_NUMBER, min_size=1, max_size=2)) if bad else None)


def lesion(bad: bool):
    return tagged(
        st.one_of(st.none(), st.lists(st.fixed_dictionaries(
            {"layer": st.integers(0, 3), "val_accuracy": CLEAN_NUMBER}), max_size=2)),
        st.one_of(st.just("layer 0"), st.lists(st.just(3), min_size=1, max_size=1),
                  st.just([{"layer": "first", "val_accuracy": 0.5}])) if bad else None)
# Config values are free-form: whatever they hold, the run is read.
ANY_VALUE = st.one_of(st.none(), st.integers(-3, 30), st.floats(allow_nan=True),
                      st.sampled_from(["abc", "", "1e3", "10"]), st.booleans(),
                      st.lists(st.integers(0, 3), max_size=2), st.just({}))
@st.composite
def mostly(draw, usual, odd=ANY_VALUE):
    """A usual value about three times in four, else any value."""
    return draw(odd if draw(st.sampled_from([False] * 3 + [True])) else usual)


MODEL = mostly(st.sampled_from(["highway_fc", "plain_fc", "shallow", "residual_fc",
                                "highway_conv", "mystery_net"]))
DATA = mostly(st.sampled_from(["digits", "synthetic", "tent", "mnist"]))
DEPTH = mostly(st.sampled_from([1, 2, 3, 20]))
CARRY_BIAS = mostly(st.sampled_from([-1.0, -2.0, -3]))


@st.composite
def config(draw) -> dict:
    cfg = {
        "model": {"name": draw(MODEL)} if draw(st.booleans()) else draw(MODEL),
        "data": {"name": draw(DATA), "num_classes": draw(st.sampled_from([10, 0, None, "x"]))}
        if draw(st.booleans()) else draw(DATA),
        "depth": draw(DEPTH), "carry_bias": draw(CARRY_BIAS),
        "seed": draw(mostly(st.integers(0, 2))),
        "optimizer": {"name": "sgd", "learning_rate": draw(st.sampled_from([0.1, 0.01, None]))},
        "eval_every": draw(st.sampled_from([10, None, "10", 0])),
        "tags": draw(st.sampled_from([{}, {"experiment": "paper_fig1"}, {"experiment": None}])),
    }
    if draw(st.booleans()):
        cfg["max_steps"] = draw(st.sampled_from([100, 200, None, "300"]))
    for key in draw(st.lists(st.sampled_from(["status", "run", "path", "family", "width"]),
                             max_size=2)):
        cfg[key] = draw(ANY_VALUE)  # config keys that share a name with a runs.csv column
    for key in draw(st.lists(st.sampled_from(["model", "data", "depth", "carry_bias", "seed"]),
                             max_size=2)):
        cfg.pop(key, None)  # records that lack a key column
    return cfg


@st.composite
def rows(draw, kind: str, bad: bool = True):
    """(lines of a metrics.jsonl or curve.jsonl, clean)."""
    lines, clean = [], True
    for index in range(draw(st.integers(0, 4))):
        shape = draw(st.sampled_from(["row", "row", "row", "garbage", "array", "bytes", "nan"]))
        if shape == "garbage":
            lines.append(draw(st.sampled_from([b"{", b"not json", b"", b"null", b"{\"step\": "])))
            continue
        if shape == "array":
            lines.append(b"[1, 2]")
            continue
        if shape == "bytes":
            lines.append(b"\xff\xfe{\"step\": 1}")
            continue
        row = {"step": 10 * (index + 1)} if kind == "curve" else {
            "epoch": index + 1, "step": 10 * (index + 1)}
        for key in ("val_accuracy", "train_loss"):
            value, ok = draw(number(bad))
            row[key] = value
            clean &= ok
        if draw(st.booleans()):
            row["gate_activity"], ok = draw(gates(bad))
            clean &= ok
        if draw(st.booleans()):
            value, ok = draw(tagged(st.just(row["step"]).map(str),
                                    st.just("ten") if bad else None))
            row["step"] = value
            clean &= ok
        if shape == "nan":
            row["val_accuracy"] = math.nan  # json writes NaN, which is no JSON but reads
        lines.append(json.dumps(row).encode())
    if lines and draw(st.booleans()):
        lines[-1] = lines[-1][: max(1, len(lines[-1]) // 2)]  # half-written last line
    return lines, clean


@st.composite
def run(draw, bad: bool = True) -> dict:
    """One run folder's files and whether it must be read (`bad`: may hold values that make
    it unusable)."""
    status = draw(st.sampled_from(["completed", "completed", "diverged", "failed",
                                   "interrupted"]))
    summary = {"schema": 1, "status": status, "config": draw(config())}
    clean = True
    for name in ("test_accuracy", "best_val_accuracy", "final_val_accuracy", "threshold",
                 "epochs", "params", "wall_seconds", "epochs_to_threshold", "eval_every"):
        if draw(st.booleans()):
            value, ok = draw(number(bad))
            summary[name] = value
            clean &= ok
    if draw(st.booleans()):
        summary["gate_activity"], ok = draw(gates(bad))
        clean &= ok
    if draw(st.booleans()):
        summary["lesion"], ok = draw(lesion(bad))
        clean &= ok
    if draw(st.booleans()):
        summary["error"] = draw(st.one_of(st.none(), st.just("boom"), st.integers()))
    text = json.dumps(summary).encode()
    damage = draw(st.sampled_from(["none"] * 14 + ["truncated", "not_utf8", "no_schema",
                                                    "bad_status", "missing", "directory",
                                                    "list"])) if bad else "none"
    if damage != "none":
        clean = False
    if damage == "truncated":
        text = text[: len(text) // 2]
    elif damage == "not_utf8":
        text = b"\xff" + text
    elif damage == "no_schema":
        text = json.dumps({k: v for k, v in summary.items() if k != "schema"}).encode()
    elif damage == "bad_status":
        text = json.dumps({**summary, "status": draw(st.sampled_from(["done", None, 3]))}).encode()
    elif damage == "list":
        text = b"[1, 2, 3]"
    metrics, ok_metrics = draw(rows("metrics", bad))
    curve, ok_curve = draw(rows("curve", bad))
    unreadable = draw(st.sampled_from([None] * 14 + ["metrics.jsonl", "curve.jsonl"])) \
        if bad else None
    clean = clean and ok_metrics and ok_curve and unreadable is None
    return {"summary": None if damage == "missing" else text,
            "summary_dir": damage == "directory", "metrics": metrics, "curve": curve,
            "unreadable": unreadable, "clean": clean, "must_skip": damage != "none"}


def write(folder: Path, runs: list[dict]) -> list[Path]:
    paths = []
    for index, spec in enumerate(runs):
        path = folder / f"run{index}"
        path.mkdir(parents=True)
        if spec["summary_dir"]:
            (path / "summary.json").mkdir()
        elif spec["summary"] is not None:
            (path / "summary.json").write_bytes(spec["summary"])
        for name, lines in (("metrics.jsonl", spec["metrics"]), ("curve.jsonl", spec["curve"])):
            if spec["unreadable"] == name:
                (path / name).mkdir()  # a folder where the file should be: cannot be read
            elif lines:
                (path / name).write_bytes(b"\n".join(lines) + b"\n")
        if spec["summary"] is None and not spec["summary_dir"] and not spec["metrics"]:
            (path / ".hydra").mkdir()  # a run folder without any record yet
        paths.append(path)
    return paths


def analyse(folder: Path, *options) -> tuple[int, str, str]:
    """main() on folder: (exit code, stdout, stderr); any exception fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main([str(folder), "--out", str(folder / "analysis"), *options])
    import matplotlib.pyplot as plt

    plt.close("all")
    return code, out.getvalue(), err.getvalue()


def check_contract(folder: Path, specs: list[dict], paths: list[Path], code, stdout, stderr):
    assert "Traceback" not in stderr
    if code == 1:
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and "No finished highway_study runs" in lines[0], stderr
        assert not any(spec["clean"] for spec in specs), stderr
        return
    assert code == 0, stderr
    assert (folder / "analysis" / "report.md").exists()
    table = pd.read_csv(folder / "analysis" / "runs.csv")
    read = set(table["run"].astype(str))
    skipped_lines = [line for line in stderr.splitlines() if line.startswith("  ")]
    for spec, path in zip(specs, paths):
        named = [line for line in skipped_lines if line.startswith(f"  {path}:")]
        if spec["clean"]:
            assert path.name in read, (path.name, stderr)
        if spec["must_skip"]:
            assert path.name not in read, path.name
        assert (path.name in read) != (len(named) == 1), (path.name, stderr)
        assert len(named) <= 1, stderr
    assert stderr.count("warning: skipped") <= 1
    assert all(line.startswith(("warning: ", "  ")) for line in stderr.splitlines()), stderr


@SETTINGS
@given(st.lists(run(), min_size=1, max_size=3))
def test_any_folder_of_run_records_is_read_or_skipped_never_a_traceback(specs):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "sweep"
        paths = write(folder, specs)
        code, stdout, stderr = analyse(folder)
        check_contract(folder, specs, paths, code, stdout, stderr)


@settings(SETTINGS, max_examples=12)  # every example draws every figure: a few seconds each
@given(st.lists(run(bad=False), min_size=2, max_size=3))
def test_mixtures_of_usable_runs_are_all_read(specs):
    """Folders of usable runs only (every data set, model, max_steps, status mixed): all of
    them in runs.csv, exit 0, at most one warning per kind."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "sweep"
        paths = write(folder, specs)
        code, stdout, stderr = analyse(folder)
        check_contract(folder, specs, paths, code, stdout, stderr)
        assert code == 0
        for kind in ("warning: skipped", "warning: The runs are of", "warning: Cells pool"):
            assert stderr.count(kind) <= 1, stderr
