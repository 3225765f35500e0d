"""The run record: one Summary type, read back whatever version of schema 1 wrote it."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import pytest

from analysis.collect import collect
from faults import fault
from highway_study import record

# Written by the code before the layout change (commit be8e28b): two runs of a tiny sweep.
OLD_RECORDS = Path(__file__).parent / "fixtures" / "records_before_layout"


def test_a_record_written_before_the_layout_change_is_read_whole():
    summary = record.read_summary(OLD_RECORDS / "highway_fc")
    assert summary.status == "completed" and summary.config["model"]["name"] == "highway_fc"
    assert len(summary.gate_activity) == 4 and [r["layer"] for r in summary.lesion] == [0, 2]
    assert summary.epochs == 2 and summary.steps == 8
    # layers_used is derived, so old records get today's rule: its gates (0.10-0.12) stayed
    # near their start at carry bias -2 (0.12), so none opened
    assert summary.config["carry_bias"] == -2.0 and summary.layers_used == 0


def test_the_analysis_reads_records_written_before_the_layout_change():
    collection = collect([OLD_RECORDS])
    runs = collection.runs.set_index("model")
    assert sorted(runs.index) == ["highway_fc", "plain_fc"]
    assert runs.loc["highway_fc", "family"] == "highway"
    assert runs.loc["plain_fc", "family"] == "plain"
    assert set(collection.gates["run"]) == {"highway_fc"}
    assert len(collection.lesions) == 2


def test_summary_round_trips_and_ignores_keys_it_does_not_know(tmp_path):
    summary = record.Summary(status="completed", config={"depth": 3}, best_val_accuracy=0.5,
                             test_accuracy=float("nan"))
    record.write_summary(tmp_path, summary)
    data = json.loads((tmp_path / record.SUMMARY_FILE).read_text())
    assert data["schema"] == record.SCHEMA and data["test_accuracy"] is None  # NaN -> null
    data["a_key_from_a_later_version"] = 1
    (tmp_path / record.SUMMARY_FILE).write_text(json.dumps(data))
    back = record.read_summary(tmp_path)
    assert back.best_val_accuracy == 0.5 and back.test_accuracy is None


@fault("a summary.json that is not a run record (no schema, unknown schema, unknown status, no config)",
       "`python -m analysis FOLDER`", "the folder is skipped and named, with the reason, in one warning")
@pytest.mark.parametrize("data, why", [
    ([1, 2], "no schema"),
    ({"schema": 99, "status": "completed", "config": {}}, "unknown schema 99"),
    ({"schema": 1, "status": "exploded", "config": {}}, "known status"),
    ({"schema": 1, "status": "completed"}, "the config"),
])
def test_a_summary_that_is_not_a_run_record_is_refused_with_the_reason(tmp_path, data, why):
    (tmp_path / record.SUMMARY_FILE).write_text(json.dumps(data))
    with pytest.raises(record.RecordError, match=why):
        record.read_summary(tmp_path)


def test_first_reaching_is_the_one_threshold_rule():
    rows = [{"epoch": 1, "step": 10, "val_accuracy": 0.5},
            {"epoch": 2, "step": 20, "val_accuracy": None},
            {"epoch": 3, "step": 30, "val_accuracy": 0.9},
            {"epoch": 4, "step": 40, "val_accuracy": 0.95}]
    assert record.first_reaching(rows, 0.9) == (3, 30)
    assert record.first_reaching(rows, 0.99) == (None, None)


@pytest.mark.parametrize("status, metric, expected", [
    ("completed", "best_val_accuracy", 0.8),
    ("completed", "final_val_accuracy", 0.7),
    ("completed", "test_accuracy", 0.75),
    ("diverged", "best_val_accuracy", 0.0),
    ("failed", "test_accuracy", 0.0),
])
def test_objective_is_the_named_metric_of_a_completed_run(status, metric, expected):
    summary = record.Summary(status=status, config={}, best_val_accuracy=0.8,
                             final_val_accuracy=0.7, test_accuracy=0.75)
    assert math.isclose(record.objective(summary, metric), expected)


def test_objective_refuses_a_metric_the_record_does_not_have():
    with pytest.raises(ValueError, match="optimized_metric='loss'"):
        record.objective(record.Summary(status="completed", config={}), "loss")


@pytest.mark.parametrize("status, expected", [("completed", 2.0), ("diverged", 0.0),
                                              ("failed", 0.0)])
def test_layers_used_is_an_objective_of_completed_runs(status, expected):
    summary = record.Summary(status=status, config={}, gate_activity=[0.5, 0.09, 0.1, 1e-9])
    assert record.objective(summary, "layers_used") == expected
    gateless = record.Summary(status="completed", config={}, gate_activity=[])
    assert record.objective(gateless, "layers_used") == 0.0


def test_objectives_follow_the_shape_of_optimized_metric():
    summary = record.Summary(status="completed", config={}, best_val_accuracy=0.8,
                             test_accuracy=0.75, gate_activity=[0.2, 0.3, 0.01])
    assert record.objectives(summary, "best_val_accuracy") == 0.8  # one name: one float
    assert record.objectives(summary, ["best_val_accuracy", "layers_used"]) == [0.8, 2.0]
    assert record.objectives(summary, ["layers_used", "test_accuracy"]) == [2.0, 0.75]
    assert record.objectives(summary, ["test_accuracy"]) == [0.75]  # a list: a list
    diverged = record.Summary(status="diverged", config={}, best_val_accuracy=0.3,
                              gate_activity=[0.5])
    assert record.objectives(diverged, ["best_val_accuracy", "layers_used"]) == [0.0, 0.0]
    assert record.objectives(None, ["best_val_accuracy", "layers_used"]) == [0.0, 0.0]
    assert record.objectives(None) == 0.0


@pytest.mark.parametrize("metric, says", [
    (["best_val_accuracy", "loss"], "optimized_metric=['best_val_accuracy', 'loss'] holds "
                                    "'loss', which is not allowed: use one of "),
    ("loss", "optimized_metric='loss' is not allowed: use one of "),
    ([], "optimized_metric=[] is not allowed: name at least one of "),
    (["layers_used", "layers_used"], "optimized_metric=['layers_used', 'layers_used'] "
                                     "names layers_used twice"),
])
def test_objectives_refuse_bad_names_in_one_sentence(metric, says):
    with pytest.raises(ValueError) as error:
        record.objectives(record.Summary(status="completed", config={}), metric)
    message = str(error.value)
    assert message.startswith(says) and "\n" not in message
    if "use one of" in says:
        assert ", ".join(record.OBJECTIVES) in message


@fault("summary.json's permissions", "any run, umask 022 (or 077)",
       "summary.json is 0644 (or 0600) like every other file the run writes, not always 0600")
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_summary_follows_the_umask_like_every_other_file(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        record.write_summary(tmp_path, record.Summary(status="completed", config={}))
        record.append_metrics(tmp_path, {"epoch": 1})
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / record.SUMMARY_FILE).stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / record.METRICS_FILE).stat().st_mode) == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [record.SUMMARY_FILE, record.METRICS_FILE])  # no temporary file left


@fault("a metrics.jsonl line that is valid JSON but not an object (`[1, 2]`, `3`, `\"x\"`, `null`)",
       "`python -m analysis FOLDER`", "the line is skipped like a half-written one; the analysis runs")
def test_metrics_lines_that_are_not_objects_are_skipped_by_record_and_analysis(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    record.write_summary(run, record.Summary(status="completed", config={"depth": 2},
                                             best_val_accuracy=0.5))
    lines = ['{"epoch": 1, "step": 5, "val_accuracy": 0.5}', "[1, 2]", "3", '"x"', "null",
             '{"epoch": 2, "step": 10, "val_accuracy": 0.6}', '{"epoch": 3, "st']
    (run / record.METRICS_FILE).write_text("\n".join(lines) + "\n")
    assert [row["epoch"] for row in record.read_metrics(run)] == [1, 2]
    collection = collect([tmp_path])
    assert collection.runs["epochs_done"].tolist() == [2]
    assert collection.curves["epoch"].tolist() == [1, 2]


def test_layers_used_counts_layers_whose_gate_transforms_at_least_the_stated_share():
    assert record.layers_used([0.5, 0.1, 0.0999, 1e-9, None, 0.9]) == 3
    summary = record.Summary(status="completed", config={}, gate_activity=[0.2, 0.01, 0.3])
    assert summary.layers_used == 2
    assert record.Summary(status="completed", config={}).layers_used is None  # no gates


@pytest.mark.parametrize("carry_bias, gates, used", [
    (-3.0, [0.1, 0.0999, 0.5], 2),       # start 0.047: the 0.1 floor decides
    (-2.0, [0.12, 0.2, 0.24, 0.6], 2),   # start 0.119: twice it, 0.238, decides
    (-1.0, [0.27, 0.49, 0.5, 0.9], 2),   # start 0.269: one half caps twice it (0.538)
    (1.0, [0.73, 0.4, 0.5], 2),          # gates that start open: from one half
    (-20.0, [2e-9, 0.05, 0.1], 1),
])
def test_a_layer_is_used_only_when_its_gate_opened_from_where_the_carry_bias_put_it(
        carry_bias, gates, used):
    assert record.layers_used(gates, carry_bias) == used
    summary = record.Summary(status="completed", config={"carry_bias": carry_bias},
                             gate_activity=gates)
    assert summary.layers_used == used == record.objective(summary, "layers_used")


def test_a_net_whose_gates_never_moved_from_minus_two_uses_no_layer():
    start = 1.0 / (1.0 + math.exp(2.0))  # 0.119: above 0.1, yet nothing was learned
    summary = record.Summary(status="completed", config={"carry_bias": -2},
                             gate_activity=[start] * 100)
    assert record.layers_used([start] * 100) == 100  # the floor alone would count them all
    assert summary.layers_used == 0
    assert record.used_floor(float("nan")) == record.USED_GATE  # a table's missing carry bias
