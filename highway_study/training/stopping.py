"""Stopping early when validation accuracy has stopped improving (`patience`)."""

from __future__ import annotations

import math


def patience_exhausted(history, patience: int) -> bool:
    """Whether a run with these metrics rows stops after its last one.

    The rule of keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
    patience=patience), counted over every row the run has, those before a resume
    included, so a resumed run stops where the uninterrupted one does.
    """
    best, wait = -math.inf, 0
    for row in history:
        accuracy = row.get("val_accuracy")
        if accuracy is None:
            continue
        wait += 1
        if accuracy > best:
            best, wait = accuracy, 0
    return wait >= patience and len(history) > 1
