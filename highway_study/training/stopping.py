"""Stopping fit() early: when asked (a signal, between two steps) or when validation
accuracy has stopped improving (`patience`), resumable from a run's earlier epochs."""

from __future__ import annotations

import math

import keras


class StopRequested(Exception):
    """Raised inside fit() at a safe point; train() turns it into training.Interrupted."""


class StopWhenAsked(keras.callbacks.Callback):
    """Stops fit() between steps once `should_stop()` is true, before the epoch ends.

    Raising (rather than setting stop_training) keeps Keras from closing the epoch: no
    metrics row or checkpoint is written for a half-trained epoch, so a resume repeats
    exactly the epoch that was cut.
    """

    def __init__(self, should_stop):
        super().__init__()
        self.should_stop = should_stop
        self.stopped = False

    def on_train_batch_end(self, batch, logs=None):
        self._check()

    def on_epoch_begin(self, epoch, logs=None):  # every callback has ended the last epoch
        self._check()

    def _check(self):
        if self.should_stop():
            self.stopped = True
            raise StopRequested()


class Patience(keras.callbacks.Callback):
    """Stops when validation accuracy has not improved for `patience` epochs.

    The rule of keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max"), but its
    count starts from the metrics rows of the epochs a resumed run already has (Keras's
    callback starts from scratch in every fit()), so a resumed run stops where the
    uninterrupted one does. Put it before the checkpoint callback, which records the stop.
    """

    def __init__(self, patience: int, history=()):
        super().__init__()
        self.patience = patience
        self.best = -math.inf
        self.wait = 0
        for row in history:
            self._update(row.get("val_accuracy"))

    def _update(self, accuracy) -> None:
        if accuracy is None:
            return
        self.wait += 1
        if accuracy > self.best:
            self.best, self.wait = accuracy, 0

    def on_epoch_end(self, epoch, logs=None):
        accuracy = (logs or {}).get("val_accuracy")
        self._update(None if accuracy is None else float(accuracy))
        if self.wait >= self.patience and epoch > 0:
            self.model.stop_training = True
