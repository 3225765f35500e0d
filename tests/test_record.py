"""The run record: one Summary type, read back whatever version of schema 1 wrote it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from analysis.collect import collect
from highway_study import record

# Written by the code before the layout change (commit be8e28b): two runs of a tiny sweep.
OLD_RECORDS = Path(__file__).parent / "fixtures" / "records_before_layout"


def test_a_record_written_before_the_layout_change_is_read_whole():
    summary = record.read_summary(OLD_RECORDS / "highway_fc")
    assert summary.status == "completed" and summary.config["model"]["name"] == "highway_fc"
    assert len(summary.gate_activity) == 4 and [r["layer"] for r in summary.lesion] == [0, 2]
    assert summary.epochs == 2 and summary.steps == 8


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
