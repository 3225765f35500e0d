"""Train one configuration: data -> model -> fit -> test -> run record.

`train(cfg, run_dir)` is a plain function: no signal handlers, no sys.exit, no process-wide
state beyond TensorFlow's own. It resumes from the run folder's checkpoint when there is
one, writes metrics.jsonl as epochs end and summary.json at the end, and returns the
Summary. Asked to stop (`should_stop` returns True between steps) it saves what it has and
raises `Interrupted`; the caller decides what that means for the process.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Callable

import keras
import tensorflow as tf
from omegaconf import OmegaConf

from highway_study import data as data_lib
from highway_study import record
from highway_study.models import build_model, count_params
from highway_study.models.lesion import lesion_accuracies
from highway_study.training import checkpoint, stepwise, stopping
from highway_study.training import epochs as epochs_lib
from highway_study.training.optim import make_loss, make_optimizer, to_dataset
from highway_study.training.progress import RunProgress
from highway_study.training.recorder import RunRecorder, StepPoints

log = logging.getLogger(__name__)
GATE_BATCH = 256

__all__ = ["Interrupted", "evaluate", "seed_everything", "train"]


class Interrupted(Exception):
    """Training stopped because `should_stop` said so; every finished epoch is on disk."""

    def __init__(self, epochs: int, seconds: float):
        super().__init__(f"stopped after epoch {epochs}")
        self.epochs = epochs
        self.seconds = seconds


def seed_everything(seed: int, free_memory: bool = True) -> None:
    """A fresh Keras state and every random generator seeded: the run repeats exactly, and
    nothing a previous run in the same process left behind (layer names, seed generators,
    graphs) leaks in. `free_memory=False` skips Python's garbage collection (a quarter of a
    second in a process holding TensorFlow), for callers that build many models in a row."""
    keras.backend.clear_session(free_memory=free_memory)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def train(cfg, run_dir, verbose: bool = True,
          should_stop: Callable[[], bool] | None = None) -> record.Summary:
    """Train the configured model, write its run record and return the summary.

    A run folder with a checkpoint resumes from it and trains exactly as the uninterrupted
    run would have (data order and random state come from the seed and the epoch);
    `wall_seconds` adds up every attempt's time.
    """
    start = time.perf_counter()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)

    dataset = data_lib.load(cfg.data, cfg.seed)
    log.info("data: %s", dataset.source)
    model = build_and_compile(cfg, dataset)
    resume = checkpoint.restore(run_dir, model, OmegaConf.to_container(cfg, resolve=True))
    if not resume.intact:  # a checkpoint that failed to load may have changed some weights
        seed_everything(cfg.seed)
        model = build_and_compile(cfg, dataset)

    def elapsed() -> float:
        return resume.wall_seconds + time.perf_counter() - start

    steps = epochs_lib.steps_per_epoch(len(dataset.x_train), cfg.batch_size)
    epochs = cfg.epochs if cfg.max_steps is None else math.ceil(cfg.max_steps / steps)
    log.info("%s: depth %d, width %d, carry_bias %g, %d parameters, %d epochs of %d steps",
             cfg.model.name, cfg.depth, cfg.width, cfg.carry_bias, count_params(model),
             epochs, steps)

    tensorboard_dir = run_dir / "tensorboard" if cfg.tensorboard else None
    recorder = RunRecorder(run_dir, dataset.x_val[:GATE_BATCH], cfg.max_steps, verbose,
                           tensorboard_dir, history=resume.history)
    recorder.diverged = resume.diverged
    step_recorder = stepwise.recorder_for(cfg, run_dir, model, dataset, recorder.step,
                                          dataset.x_val[:GATE_BATCH], tensorboard_dir)
    progress = RunProgress(total_steps(cfg, len(dataset.x_train)), recorder.step,
                           enabled=None if verbose else False)
    callbacks = [epochs_lib.ReseedEachEpoch(cfg.seed), recorder,
                 StepPoints(step_recorder, progress, len(dataset.x_train), cfg.batch_size)]
    if cfg.patience is not None:  # train until validation accuracy stops improving
        callbacks.append(stopping.Patience(cfg.patience, resume.history))
    callbacks += [
        checkpoint.EpochCheckpoint(run_dir, epochs, elapsed, lambda: recorder.diverged),
        stopping.StopWhenAsked(should_stop or (lambda: False)),
    ]
    if tensorboard_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(
            log_dir=str(tensorboard_dir), write_graph=False, profile_batch=0))
    if not resume.trained and resume.epoch < epochs:
        try:
            with progress:
                model.fit(
                    epochs_lib.training_batches(dataset.x_train, dataset.y_train,
                                                cfg.batch_size, cfg.seed, resume.epoch, epochs),
                    validation_data=to_dataset(dataset.x_val, dataset.y_val, 1024),
                    epochs=epochs, initial_epoch=resume.epoch, steps_per_epoch=steps,
                    callbacks=callbacks, verbose=0, shuffle=False,
                )
        except stopping.StopRequested:
            raise Interrupted(len(recorder.history), elapsed()) from None
    summary = summarize(cfg, model, dataset, recorder)
    if step_recorder is not None:
        summary = dataclasses.replace(
            summary, **stepwise.summary_fields(cfg, step_recorder, dataset))
    summary.wall_seconds = elapsed()
    record.write_summary(run_dir, summary)
    checkpoint.remove(run_dir)  # only now: a run stopped before this point resumes here
    return summary


def total_steps(cfg, train_size: int) -> int:
    """Optimizer steps the whole run takes (the schedule and the progress bar need it)."""
    steps = epochs_lib.steps_per_epoch(train_size, cfg.batch_size)
    epochs = cfg.epochs if cfg.max_steps is None else math.ceil(cfg.max_steps / steps)
    return cfg.max_steps or epochs * steps


def build_and_compile(cfg, dataset):
    """The configured model, compiled with its optimizer, loss and metrics."""
    model = build_model(cfg, dataset.num_features, dataset.num_classes,
                        image_shape=dataset.image_shape)
    model.compile(
        optimizer=make_optimizer(cfg.optimizer, total_steps(cfg, len(dataset.x_train))),
        loss=make_loss(cfg.loss_reduction),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="xent"),
        ],
    )
    return model


def summarize(cfg, model, dataset, recorder) -> record.Summary:
    """The run's Summary from its history, with test accuracy and lesions when it trained."""
    history = recorder.history
    epoch, step = record.first_reaching(history, cfg.threshold)
    summary = record.Summary(
        status="diverged" if recorder.diverged else "completed",
        config=OmegaConf.to_container(cfg, resolve=True),
        **record.progress(history),
        threshold=cfg.threshold,
        epochs_to_threshold=epoch,
        steps_to_threshold=step,
        params=count_params(model),
        data_source=dataset.source,
        gate_activity=history[-1]["gate_activity"] if history else [],
    )
    if not recorder.diverged:
        summary.test_loss, summary.test_accuracy = evaluate(model, dataset.x_test, dataset.y_test)
        if cfg.lesion_every:
            summary.lesion = lesion_accuracies(
                model, lambda m: evaluate(m, dataset.x_val, dataset.y_val)[1], cfg.lesion_every)
        log.info("test accuracy %.2f%% (best validation %.2f%%)",
                 100 * summary.test_accuracy, 100 * summary.best_val_accuracy)
    return summary


def evaluate(model, x, y) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` on (x, y)."""
    results = model.evaluate(to_dataset(x, y, 1024), verbose=0, return_dict=True)
    return float(results["xent"]), float(results["accuracy"])
