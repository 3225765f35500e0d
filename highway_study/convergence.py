"""Convergence at step resolution: what a run's validation curve says, as pure functions.

A curve is a list of points (dicts) from curve.jsonl, each with at least `step` and
`val_accuracy` (None where it could not be measured), in step order. Training puts these
numbers in summary.json; the analysis recomputes them from curve.jsonl (for example at
another threshold). No TensorFlow, no I/O: the rules live here once.

The rules (docs/convergence.md):
- steps to a threshold: the step of the first point whose validation accuracy reaches it
  (None if no point does);
- curve area: the area under validation accuracy over steps (trapezoids between points),
  divided by the steps the curve spans, so 1.0 is a net that is perfect from its first
  point and chance level gives about 1/classes;
- stalled: the run trained at least `after` steps and at no point from step `after` on was
  its validation accuracy more than `margin` above chance (None for a shorter run: too
  early to tell);
- gate shift: the mean over layers of |T(last point) - T(first point)|, how far the
  transform gates moved from where they started.
"""

from __future__ import annotations

import math

# Thresholds whose steps every summary records (the config's `threshold` is added).
THRESHOLDS = (0.5, 0.9, 0.95)
# The stall rule: never more than STALL_MARGIN above chance from step STALL_AFTER on.
STALL_AFTER = 1000
STALL_MARGIN = 0.10


def measured(points: list[dict], key: str = "val_accuracy") -> list[tuple[int, float]]:
    """(step, value) of the points where `key` is a finite number, in step order."""
    pairs = []
    for point in points:
        value, step = point.get(key), point.get("step")
        if isinstance(value, (int, float)) and math.isfinite(value) and step is not None:
            pairs.append((int(step), float(value)))
    return sorted(pairs, key=lambda pair: pair[0])


def steps_to(points: list[dict], threshold: float) -> int | None:
    """The step of the first point whose validation accuracy reaches `threshold`, or None."""
    for step, accuracy in measured(points):
        if accuracy >= threshold:
            return step
    return None


def threshold_key(threshold: float) -> str:
    """How a threshold names its entry in `steps_to` (0.9 -> "0.9")."""
    return f"{threshold:g}"


def steps_to_thresholds(points: list[dict], thresholds=THRESHOLDS) -> dict[str, int | None]:
    """{"0.5": step or None, "0.9": ..., ...} for every threshold, in increasing order."""
    return {threshold_key(t): steps_to(points, t) for t in sorted(set(thresholds))}


def curve_area(points: list[dict]) -> float | None:
    """Area under validation accuracy over steps, normalised by the steps spanned: in [0, 1].

    None with fewer than two measured points (no span to normalise by).
    """
    pairs = measured(points)
    if len(pairs) < 2 or pairs[-1][0] == pairs[0][0]:
        return None
    area = sum((s1 - s0) * (a0 + a1) / 2 for (s0, a0), (s1, a1) in zip(pairs, pairs[1:]))
    return area / (pairs[-1][0] - pairs[0][0])


def stalled(points: list[dict], chance: float, after: int = STALL_AFTER,
            margin: float = STALL_MARGIN) -> bool | None:
    """True when the run trained at least `after` steps and no point from step `after` on is
    more than `margin` above `chance`; False when one is; None for a run shorter than `after`."""
    pairs = measured(points)
    if not pairs or pairs[-1][0] < after:
        return None
    return all(accuracy <= chance + margin for step, accuracy in pairs if step >= after)


def accuracy_at(points: list[dict], budget: int) -> float | None:
    """Validation accuracy after `budget` steps: the last point at or before it.

    None when the run stopped before `budget` steps (its accuracy there is unknown).
    """
    pairs = measured(points)
    if not pairs or pairs[-1][0] < budget:
        return None
    before = [accuracy for step, accuracy in pairs if step <= budget]
    return before[-1] if before else None


def summarize(points: list[dict], chance: float, thresholds=THRESHOLDS) -> dict:
    """What summary.json says about a curve: steps_to, curve_area, stalled, gate_shift."""
    return {
        "steps_to": steps_to_thresholds(points, thresholds),
        "curve_area": curve_area(points),
        "stalled": stalled(points, chance),
        "gate_shift": gate_shift(points),
    }


def gate_shift(points: list[dict]) -> float | None:
    """Mean over layers of |T at the last point - T at the first|; None without gates."""
    gated = [p["gate_activity"] for p in points
             if p.get("gate_activity") and None not in p["gate_activity"]]
    if len(gated) < 2 or len(gated[0]) != len(gated[-1]):
        return None
    first, last = gated[0], gated[-1]
    return sum(abs(b - a) for a, b in zip(first, last)) / len(first)
