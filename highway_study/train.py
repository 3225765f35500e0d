"""One run of the study: data -> model -> fit -> test -> run record."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from omegaconf import OmegaConf

from highway_study import data as data_lib
from highway_study import records, resume
from highway_study.callbacks import RunRecorder
from highway_study.lesion import lesion_accuracies
from highway_study.models import build_model, count_params

log = logging.getLogger(__name__)
GATE_BATCH = 256


def make_optimizer(opt_cfg):
    if opt_cfg.name == "adam":
        return keras.optimizers.Adam(learning_rate=opt_cfg.learning_rate)
    momentum = opt_cfg.momentum if opt_cfg.name == "momentum" else 0.0
    return keras.optimizers.SGD(learning_rate=opt_cfg.learning_rate, momentum=momentum)


def make_loss(reduction: str):
    return keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="sum" if reduction == "sum" else "sum_over_batch_size"
    )


def to_dataset(x, y, batch_size: int, seed: int | None = None) -> tf.data.Dataset:
    """A batched tf.data pipeline; shuffled (seeded, every epoch) when `seed` is given."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if seed is not None:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    options = tf.data.Options()
    options.autotune.enabled = False  # avoids multi-second idles at fit() teardown here
    options.deterministic = True
    return ds.batch(batch_size).with_options(options)


def seed_everything(seed: int) -> None:
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def train(cfg, run_dir, verbose: bool = True) -> dict:
    """Train the configured model and write its run record; return the summary."""
    start = time.perf_counter()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.backend.clear_session()
    seed_everything(cfg.seed)

    dataset = data_lib.load(cfg.data, cfg.seed)
    model = build_model(cfg, dataset.num_features, dataset.num_classes,
                        image_shape=dataset.image_shape)
    model.compile(
        optimizer=make_optimizer(cfg.optimizer),
        loss=make_loss(cfg.loss_reduction),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="xent"),
        ],
    )
    steps_per_epoch = math.ceil(len(dataset.x_train) / cfg.batch_size)
    epochs = cfg.epochs if cfg.max_steps is None else math.ceil(cfg.max_steps / steps_per_epoch)
    log.info("%s: depth %d, width %d, carry_bias %g, %d parameters, %d epochs of %d steps",
             cfg.model.name, cfg.depth, cfg.width, cfg.carry_bias, count_params(model),
             epochs, steps_per_epoch)

    tensorboard_dir = run_dir / "tensorboard" if cfg.tensorboard else None
    recorder = RunRecorder(run_dir, dataset.x_val[:GATE_BATCH], cfg.max_steps, verbose,
                           tensorboard_dir, history=resume.restore_history(run_dir))
    callbacks = [recorder, resume.checkpoint_callback(run_dir),  # metrics, then checkpoint
                 resume.interrupt_callback()]  # SIGTERM/Ctrl-C stop between steps
    if cfg.patience is not None:  # train until validation accuracy stops improving
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_accuracy", patience=cfg.patience, mode="max"))
    if tensorboard_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(
            log_dir=str(tensorboard_dir), write_graph=False, profile_batch=0))
    model.fit(
        to_dataset(dataset.x_train, dataset.y_train, cfg.batch_size, seed=cfg.seed),
        validation_data=to_dataset(dataset.x_val, dataset.y_val, 1024),
        epochs=epochs, callbacks=callbacks, verbose=0, shuffle=False,
    )
    summary = summarize(cfg, model, dataset, recorder, start)
    records.write_summary(run_dir, summary)
    return summary


def summarize(cfg, model, dataset, recorder, start: float) -> dict:
    history = recorder.history
    reached = [row for row in history if (row["val_accuracy"] or 0.0) >= cfg.threshold]
    summary = {
        "status": "diverged" if recorder.diverged else "completed",
        "error": None,
        "test_loss": None,
        "test_accuracy": None,
        **records.progress(history),
        "threshold": cfg.threshold,
        "epochs_to_threshold": reached[0]["epoch"] if reached else None,
        "steps_to_threshold": reached[0]["step"] if reached else None,
        "params": count_params(model),
        "wall_seconds": None,
        "gate_activity": history[-1]["gate_activity"] if history else [],
        "lesion": None,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    if not recorder.diverged:
        test_loss, test_accuracy = evaluate(model, dataset.x_test, dataset.y_test)
        summary.update(test_loss=test_loss, test_accuracy=test_accuracy)
        if cfg.lesion_every:
            summary["lesion"] = lesion_accuracies(
                model, dataset.x_val, dataset.y_val, cfg.lesion_every)
        log.info("test accuracy %.2f%% (best validation %.2f%%)",
                 100 * test_accuracy, 100 * summary["best_val_accuracy"])
    summary["wall_seconds"] = time.perf_counter() - start
    return summary


def evaluate(model, x, y) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` on (x, y)."""
    results = model.evaluate(to_dataset(x, y, 1024), verbose=0, return_dict=True)
    return float(results["xent"]), float(results["accuracy"])


def objective(summary: dict) -> float:
    """What sweeps maximise: best validation accuracy, 0 for a diverged or failed run."""
    if summary.get("status") != "completed":
        return 0.0
    value = summary.get("best_val_accuracy")
    return float(value) if value is not None and np.isfinite(value) else 0.0
