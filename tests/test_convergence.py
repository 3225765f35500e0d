"""Convergence rules on hand-made curves: thresholds, area, the stalled verdict, gate shift."""

from __future__ import annotations

import math

import pytest

from highway_study import convergence


def curve(*pairs, gates=None):
    """Points from (step, val_accuracy) pairs; gates: one list of per-layer T per point."""
    points = [{"step": s, "val_accuracy": a} for s, a in pairs]
    for point, gate in zip(points, gates or []):
        point["gate_activity"] = gate
    return points


RISING = curve((0, 0.1), (100, 0.3), (200, 0.6), (300, 0.92), (400, 0.91), (500, 0.96))


def test_steps_to_is_the_first_point_reaching_the_threshold():
    assert convergence.steps_to(RISING, 0.5) == 200
    assert convergence.steps_to(RISING, 0.9) == 300  # the later dip does not matter
    assert convergence.steps_to(RISING, 0.95) == 500
    assert convergence.steps_to(RISING, 0.97) is None


def test_steps_to_thresholds_names_each_threshold_and_is_null_if_never():
    assert convergence.steps_to_thresholds(RISING, (0.95, 0.5, 0.9, 0.99)) == {
        "0.5": 200, "0.9": 300, "0.95": 500, "0.99": None}


def test_steps_to_skips_points_without_a_measurement():
    points = curve((0, 0.1), (10, None), (20, float("nan")), (30, 0.95))
    assert convergence.steps_to(points, 0.9) == 30


def test_curve_area_is_normalised_to_the_steps_spanned():
    assert convergence.curve_area(curve((0, 1.0), (50, 1.0), (100, 1.0))) == 1.0
    assert convergence.curve_area(curve((0, 0.0), (100, 1.0))) == 0.5
    # trapezoids on uneven steps: (0.2+0.4)/2*100 + (0.4+1.0)/2*300 = 30 + 210, over 400
    assert math.isclose(convergence.curve_area(curve((0, 0.2), (100, 0.4), (400, 1.0))), 0.6)
    assert convergence.curve_area(curve((0, 0.5))) is None


@pytest.mark.parametrize("pairs, expected", [
    # never more than 10 points above chance (0.1) from step 1000 on
    (((0, 0.1), (500, 0.12), (1000, 0.15), (1500, 0.2)), True),
    # learns late, but learns: not stalled
    (((0, 0.1), (1000, 0.15), (1500, 0.35)), False),
    # learned early, then fell back to chance: stalled from step 1000 on
    (((0, 0.1), (500, 0.6), (1000, 0.11), (2000, 0.12)), True),
    # shorter than the rule's 1000 steps: too early to tell
    (((0, 0.1), (500, 0.1), (900, 0.1)), None),
])
def test_stalled_verdict_on_hand_made_curves(pairs, expected):
    assert convergence.stalled(curve(*pairs), chance=0.1) is expected


def test_stalled_rule_takes_its_chance_level_and_step_from_the_caller():
    points = curve((0, 0.5), (200, 0.58))
    assert convergence.stalled(points, chance=0.5, after=100) is True  # two classes
    assert convergence.stalled(points, chance=0.1, after=100) is False


def test_accuracy_after_a_step_budget():
    assert convergence.accuracy_at(RISING, 250) == 0.6
    assert convergence.accuracy_at(RISING, 500) == 0.96
    assert convergence.accuracy_at(RISING, 1000) is None  # the run stopped before


def test_gate_shift_is_the_mean_distance_moved_per_layer():
    points = curve((0, 0.1), (10, 0.2), (20, 0.3),
                   gates=[[0.1, 0.5], [0.2, 0.5], [0.4, 0.3]])
    assert math.isclose(convergence.gate_shift(points), (0.3 + 0.2) / 2)
    assert convergence.gate_shift(curve((0, 0.1), (10, 0.2), gates=[[], []])) is None
