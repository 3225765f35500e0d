"""Folders that mix runs (data sets, max_steps, damaged records): each fault found, by hand or
by the fuzzer (tests/test_analysis_fuzz.py), kept as a named test with its minimal input.

Every test here failed with a traceback, or said nothing, before the fix it names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.__main__ import main


def write(folder: Path, config: dict, summary: dict | None = None, metrics=None, curve=None):
    """One run folder: summary.json (status completed unless `summary` says otherwise),
    metrics.jsonl and curve.jsonl from lists of lines (dicts are written as JSON)."""
    folder.mkdir(parents=True)
    record = {"schema": 1, "status": "completed", "test_accuracy": 0.9,
              "best_val_accuracy": 0.9, "final_val_accuracy": 0.9, "config": config,
              **(summary or {})}
    (folder / "summary.json").write_text(json.dumps(record))
    for name, lines in (("metrics.jsonl", metrics), ("curve.jsonl", curve)):
        if lines is not None:
            (folder / name).write_bytes(b"".join(
                (line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n"
                for line in lines))
    return folder


def config(model="highway_fc", data="digits", depth=2, carry_bias=-1.0, seed=0, **more):
    return {"model": {"name": model}, "data": {"name": data}, "depth": depth,
            "carry_bias": carry_bias, "seed": seed, **more}


def analyse(capsys, folder: Path, *options):
    """(exit code, stderr, report text or None) of `python -m analysis FOLDER`."""
    out = folder.parent / f"{folder.name}_analysis"
    code = main([str(folder), "--out", str(out), *options])
    err = capsys.readouterr().err
    report = out / "report.md"
    return code, err, report.read_text() if report.exists() else None


# --- the issue's two faults ------------------------------------------------------------


def test_max_steps_missing_in_one_run_is_named_as_none(tmp_path, capsys):
    """Runs of one cell at max_steps 100 and 200 and one without max_steps: pandas keeps
    the missing value as NaN through astype(str), and sorting NaN among strings raised
    TypeError in select.pooled."""
    sweep = tmp_path / "sweep"
    write(sweep / "a", config(max_steps=100))
    write(sweep / "b", config(seed=1, max_steps=200))
    write(sweep / "c", config(seed=2))  # no max_steps
    write(sweep / "d", config(seed=3, max_steps=None))  # max_steps: null
    code, err, report = analyse(capsys, sweep)
    assert code == 0, err
    warning = ("Cells pool runs that differ in max_steps (100, 200, none), so their means mix "
               "those settings: pick one with --where, e.g. --where max_steps=100.")
    assert f"warning: {warning}" in err and f"**Warning:** {warning}" in report
    assert "Traceback" not in err


def test_where_none_keeps_the_runs_without_the_key(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    write(sweep / "a", config(max_steps=100))
    write(sweep / "b", config(seed=1, max_steps=200))
    write(sweep / "c", config(seed=2))
    code, err, _ = analyse(capsys, sweep, "--where", "max_steps=none")
    assert code == 0, err
    runs = pd.read_csv(tmp_path / "sweep_analysis" / "runs.csv")
    assert list(runs["run"]) == ["c"]


def test_runs_of_two_data_sets_are_named_and_tabled_apart(tmp_path, capsys):
    """A digits highway net and a synthetic plain net, one run per cell: no cell pools
    them, so nothing was said, and report.md set them in one table."""
    sweep = tmp_path / "sweep"
    write(sweep / "highway", config("highway_fc", "digits"), {"test_accuracy": 0.95})
    write(sweep / "plain", config("plain_fc", "synthetic"), {"test_accuracy": 0.55})
    code, err, report = analyse(capsys, sweep)
    assert code == 0, err
    warning = ("The runs are of 2 data sets (digits, synthetic): the report's tables are per "
               "data set, but the figures draw every run together without naming its data "
               "set; pick one with --where, e.g. --where data=digits.")
    assert err.count("warning:") == 1 and f"warning: {warning}" in err
    assert f"**Warning:** {warning}" in report
    digits = report.index("## Data set digits")
    synthetic = report.index("## Data set synthetic")
    assert digits < report.index("### 1. Do highway layers train", digits) < synthetic
    # each data set's question 1 sees only its own nets: digits has no plain net
    assert "found: highway_fc" in report[digits:synthetic]
    assert "found: plain_fc" in report[synthetic:]


def test_one_data_set_keeps_the_report_as_it_was(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    write(sweep / "a", config())
    code, err, report = analyse(capsys, sweep)
    assert code == 0 and "warning" not in err
    assert "## Data set" not in report and "## 1. Do highway layers train" in report


# --- faults the fuzzer found -----------------------------------------------------------


@pytest.mark.parametrize("field, value, words", [
    ("test_accuracy", "high", "summary.json's test_accuracy is \"high\", expected a number"),
    ("epochs", [1, 2], "summary.json's epochs is [1, 2], expected a number"),
    ("params", True, "summary.json's params is true, expected a number"),
    ("gate_activity", "0.3,0.2",
     "summary.json's gate_activity is \"0.3,0.2\", expected a list of numbers"),
    ("gate_activity", [0.3, "open"],
     "summary.json's gate_activity[1] is \"open\", expected a number"),
    ("lesion", "layer 0", "summary.json's lesion is \"layer 0\", expected a list of layers"),
    ("lesion", [3], "summary.json's lesion[0] is 3, expected"),
    ("lesion", [{"layer": "first", "val_accuracy": 0.5}],
     "summary.json's lesion[0].layer is \"first\", expected a number"),
])
def test_a_summary_value_of_the_wrong_type_skips_its_run_in_one_line(tmp_path, capsys, field,
                                                                     value, words):
    """Before: ValueError or TypeError from float(), enumerate() over a string, or .get on a
    number, with a traceback."""
    sweep = tmp_path / "sweep"
    write(sweep / "good", config())
    write(sweep / "bad", config(seed=1), {field: value})
    code, err, report = analyse(capsys, sweep)
    assert code == 0, err
    assert f"  {sweep / 'bad'}: {words}" in err and err.count(str(sweep / "bad")) == 1
    assert "Skipped 1 folders" in report


def test_numbers_written_as_strings_nan_and_infinity_are_read(tmp_path, capsys):
    """"0.93" is read as 0.93; NaN and Infinity (json.dumps writes them) as missing. Before:
    a string val_accuracy in metrics.jsonl raised TypeError ('>=' between str and float)."""
    sweep = tmp_path / "sweep"
    write(sweep / "a", config(), {"test_accuracy": "0.93", "params": float("inf"),
                                  "gate_activity": ["0.5", float("nan")]},
          metrics=[{"epoch": 1, "step": "10", "val_accuracy": "0.95"},
                   {"epoch": 2, "step": 20, "val_accuracy": float("nan")}],
          curve=[{"step": "10", "val_accuracy": "0.5"}, {"step": 20, "val_accuracy": 0.96}])
    code, err, _ = analyse(capsys, sweep)
    assert code == 0 and "warning" not in err, err
    row = pd.read_csv(tmp_path / "sweep_analysis" / "runs.csv").iloc[0]
    assert row["test_accuracy"] == pytest.approx(0.93) and pd.isna(row["params"])
    assert row["epochs_to_threshold"] == 1 and row["effective_depth"] == 1
    assert row["curve_steps_to_threshold"] == 20


@pytest.mark.parametrize("line, words", [
    ({"epoch": 1, "step": 10, "val_accuracy": "high"},
     "metrics.jsonl line 1: val_accuracy is \"high\", expected a number"),
    ({"epoch": 1, "step": 10, "val_accuracy": [0.5]},
     "metrics.jsonl line 1: val_accuracy is [0.5], expected a number"),
    ({"epoch": 1, "step": "ten", "val_accuracy": 0.5},
     "metrics.jsonl line 1: step is \"ten\", expected a number"),
])
def test_a_metrics_row_of_the_wrong_type_skips_its_run_in_one_line(tmp_path, capsys, line,
                                                                   words):
    sweep = tmp_path / "sweep"
    write(sweep / "good", config())
    write(sweep / "bad", config(seed=1), metrics=[line])
    code, err, _ = analyse(capsys, sweep)
    assert code == 0, err
    assert f"  {sweep / 'bad'}: {words}" in err


def test_garbage_lines_and_bytes_in_metrics_and_curve_are_passed_over(tmp_path, capsys):
    """Lines that are no JSON object, or not UTF-8 (before: UnicodeDecodeError from
    read_text), are passed over like a half-written last line."""
    sweep = tmp_path / "sweep"
    write(sweep / "a", config(),
          metrics=[b"\xff\xfe garbage", b"[1, 2]", b"null",
                   json.dumps({"epoch": 1, "step": 10, "val_accuracy": 0.95}).encode(),
                   b'{"epoch": 2, "st'],
          curve=[b"\xff", json.dumps({"step": 10, "val_accuracy": 0.5}).encode()])
    code, err, _ = analyse(capsys, sweep)
    assert code == 0 and "warning" not in err, err
    row = pd.read_csv(tmp_path / "sweep_analysis" / "runs.csv").iloc[0]
    assert row["epochs_done"] == 1 and row["epochs_to_threshold"] == 1


def test_an_unreadable_metrics_file_skips_its_run_in_one_line(tmp_path, capsys):
    """metrics.jsonl that cannot be read (here a folder; before: IsADirectoryError)."""
    sweep = tmp_path / "sweep"
    write(sweep / "good", config())
    (write(sweep / "bad", config(seed=1)) / "metrics.jsonl").mkdir()
    code, err, _ = analyse(capsys, sweep)
    assert code == 0, err
    assert f"  {sweep / 'bad'}: unreadable metrics.jsonl (Is a directory)" in err


@pytest.mark.parametrize("model, data", [(5, "digits"), (True, "digits"),
                                         ("highway_fc", ["a"])])
def test_model_or_data_that_is_no_name_is_read_as_text(tmp_path, capsys, model, data):
    """Before: TypeError joining sorted numbers in report.md's header, or unhashable list."""
    sweep = tmp_path / "sweep"
    write(sweep / "a", config(model=model, data=data))
    code, err, report = analyse(capsys, sweep)
    assert code == 0, err
    assert "models:" in report


def test_bare_data_value_with_a_curve_is_read(tmp_path, capsys):
    """A config whose data is a bare value (`data: digits`, not `data: {name: digits}`) and
    a curve.jsonl. Before: AttributeError ('str' object has no attribute 'get') in chance()."""
    sweep = tmp_path / "sweep"
    cfg = {**config(), "data": "digits"}
    write(sweep / "a", cfg, curve=[{"step": 10, "val_accuracy": 0.5}])
    code, err, report = analyse(capsys, sweep)
    assert code == 0, err
    assert "data: digits" in report


@pytest.mark.parametrize("depth, seed", [([1, 1], []), ({}, "abc"), (2.5, 1e30),
                                         ("abc", None)])
def test_key_columns_that_are_no_numbers_are_read_as_missing(tmp_path, capsys, depth, seed):
    """depth and seed of a list, a dict, a fraction or text. Before: unhashable list in a
    groupby, or a float that Int64 cannot hold."""
    sweep = tmp_path / "sweep"
    write(sweep / "a", config(depth=depth, seed=seed))
    write(sweep / "b", config(seed=1))
    code, err, _ = analyse(capsys, sweep)
    assert code == 0, err
    runs = pd.read_csv(tmp_path / "sweep_analysis" / "runs.csv").set_index("run")
    assert pd.isna(runs.loc["a", "depth"]) and runs.loc["b", "depth"] == 2
    assert "1 of 2 runs have no usable depth in their config (a)" in err


def test_runs_without_any_depth_are_reported_without_figures(tmp_path, capsys):
    """Before: accuracy_vs_depth failed on pandas' NA (boolean value of NA is ambiguous) and
    the learning curves on a missing depth column."""
    sweep = tmp_path / "sweep"
    write(sweep / "a", {k: v for k, v in config().items() if k != "depth"},
          metrics=[{"epoch": 1, "step": 10, "val_accuracy": 0.5}])
    code, err, report = analyse(capsys, sweep)
    assert code == 0, err
    assert "1 of 1 runs have no usable depth" in err and "# Highway study report" in report


def test_a_gated_cell_without_carry_bias_that_diverged_is_drawn(tmp_path, capsys):
    """A highway run without carry_bias whose cell has no number (diverged). Before:
    ValueError ('nan is not in list') hatching the heatmap cell."""
    sweep = tmp_path / "sweep"
    cfg = {k: v for k, v in config().items() if k != "carry_bias"}
    write(sweep / "a", cfg, {"status": "diverged", "test_accuracy": None})
    write(sweep / "b", config(depth=3))
    code, err, _ = analyse(capsys, sweep)
    assert code == 0, err
    assert (tmp_path / "sweep_analysis" / "figures" / "accuracy_heatmap.png").exists()


def test_paper_fig1_trial_without_metrics_or_a_usable_depth_is_read(tmp_path, capsys):
    """A trial tagged experiment=paper_fig1 with no metrics.jsonl. Before: KeyError
    ['step'] (the empty epochs table had no step column); with depth [1, 1], unhashable
    list grouping the trials."""
    sweep = tmp_path / "sweep"
    write(sweep / "a", config(tags={"experiment": "paper_fig1"}))
    write(sweep / "b", config(seed=1, depth=[1, 1], tags={"experiment": "paper_fig1"}))
    code, err, _ = analyse(capsys, sweep)
    assert code == 0, err


def test_config_keys_named_like_result_columns_keep_their_values(tmp_path, capsys):
    """A config with its own `status` or `path` key that varies: before, runs.csv got two
    columns of one name and the analysis failed on them."""
    sweep = tmp_path / "sweep"
    write(sweep / "a", config(status="x", path=1))
    write(sweep / "b", config(seed=1, status="y", path=2))
    code, err, _ = analyse(capsys, sweep)
    assert code == 0, err
    runs = pd.read_csv(tmp_path / "sweep_analysis" / "runs.csv")
    assert list(runs["status"]) == ["completed", "completed"]
    assert sorted(runs["config.status"]) == ["x", "y"]


def test_one_run_is_counted_as_one_run(tmp_path, capsys):
    """The last line once said "Analysed 1 runs"."""
    sweep = tmp_path / "sweep"
    write(sweep / "a", config())
    out = sweep.parent / "out"
    assert main([str(sweep), "--out", str(out)]) == 0
    assert "Analysed 1 run: " in capsys.readouterr().out
