"""Train a population: many configurations of one shape as one batched computation.

Width-50 layers leave most of a CPU's arithmetic unused when one small network trains at a
time. Members of a population share the network's shape (model, depth, width, batch size,
data, steps) and differ in what `MEMBER_KEYS` names (seed, carry bias, learning rate, ...).
Every member's weights sit on a leading axis of one tensor, so each layer is one batched
matmul for all members, while each member keeps its own initialisation (drawn exactly as a
run alone draws it), data order (`training.order`), optimizer state and run record. A
member whose loss becomes non-finite is frozen and recorded as diverged; its numbers never
reach another member's.

`train_population(members)` is the population's `train()`: it writes every member's
metrics.jsonl, checkpoint and summary.json as a run alone would, and returns the summaries.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from omegaconf import OmegaConf

from highway_study import catalog, record
from highway_study import data as data_lib
from highway_study.models import build_model, count_params
from highway_study.training import GATE_BATCH, Interrupted, order, seed_everything, total_steps
from highway_study.training.batched import OPTIMIZERS, Population, default_groups
from highway_study.training.curve import StepRecorder, resume_points
from highway_study.training.stack_choice import choose_stack
from highway_study.training.recorder import TensorBoardPoints
from highway_study.training.stepwise import summary_fields, val_subset_size

log = logging.getLogger(__name__)

# Config keys in which members of one population may differ; all others must be equal.
MEMBER_KEYS = frozenset({
    "seed", "carry_bias", "optimizer.learning_rate", "threshold",
    "tensorboard", "lesion_every", "optimized_metric", "tags",
})
CHECKPOINT_FILE = "checkpoint/population.npz"


def unsupported(cfg) -> str | None:
    """Why `cfg` cannot train in a population (it then trains alone), or None."""
    spec = catalog.spec(cfg.model.name)
    if not (spec.family == "highway" and spec.layout == "dense"):
        return f"model={cfg.model.name} (populations train fully connected highway nets)"
    if cfg.model.implementation != "scan":
        return f"model.implementation={cfg.model.implementation} (populations use scan)"
    if cfg.optimizer.name not in OPTIMIZERS:
        return f"optimizer={cfg.optimizer.name} (populations use {', '.join(OPTIMIZERS)})"
    if cfg.patience is not None:
        return "patience (members would stop at different epochs)"
    return None


def shape_key(cfg) -> str:
    """Equal for configurations that can train in one population."""
    flat = record.flatten_config(OmegaConf.to_container(cfg, resolve=True))
    return json.dumps({k: v for k, v in sorted(flat.items()) if _not_member_key(k)})


def _not_member_key(key: str) -> bool:
    return key not in MEMBER_KEYS and not key.startswith("tags.")


@dataclass
class Member:
    """One configuration of the population and what it has recorded so far."""

    cfg: object
    run_dir: Path
    dataset: object = None
    history: list = field(default_factory=list)
    diverged_at: int | None = None  # the step whose loss was not finite
    writer: object = None
    curve: StepRecorder | None = None  # its step-resolution points (None: eval_every=0)

    @property
    def alive(self) -> bool:
        return self.diverged_at is None


def saved_epoch(run_dir) -> int:
    """Epochs a population checkpoint in `run_dir` holds that its metrics agree with (else 0)."""
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.exists():
        return 0
    try:
        with np.load(path) as saved:
            epoch = int(saved["epoch"])
    except (OSError, ValueError, KeyError):
        return 0
    return epoch if len(record.read_metrics(run_dir)) == epoch else 0


def train_population(configs, run_dirs, should_stop: Callable[[], bool] | None = None,
                     groups: int | None = None) -> list[record.Summary]:
    """Train every configuration (all of one `shape_key`) at once; return their summaries.

    `groups` splits the members into that many independent batched computations, which
    TensorFlow runs side by side on its inter-op threads (None: as many as `model.streams`
    would give a run alone).
    """
    start = time.perf_counter()
    should_stop = should_stop or (lambda: False)
    members = [Member(cfg, Path(d)) for cfg, d in zip(configs, run_dirs)]
    first = members[0].cfg
    if len({shape_key(m.cfg) for m in members}) != 1:
        raise ValueError("a population's members must share their shape (see MEMBER_KEYS).")
    loaded = {}  # members of one seed share their data (and its split)
    for member in members:
        member.run_dir.mkdir(parents=True, exist_ok=True)
        key = (json.dumps(OmegaConf.to_container(member.cfg.data, resolve=True)),
               member.cfg.seed)
        if key not in loaded:
            loaded[key] = data_lib.load(member.cfg.data, member.cfg.seed)
        member.dataset = loaded[key]
    initial, params = _initial_weights(members)
    start_epoch = _resume(members, initial)
    stack = choose_stack(keras.activations.get(first.model.activation), first.depth)
    population = Population(members, initial, groups or default_groups(len(members), first.depth),
                             total_steps(first, len(members[0].dataset.x_train)), stack=stack)
    for k, member in enumerate(members):
        if not member.alive:  # diverged before the checkpoint it resumes from
            population.freeze(k)
    steps_per_epoch = math.ceil(len(members[0].dataset.x_train) / first.batch_size)
    epochs = first.epochs if first.max_steps is None else math.ceil(
        first.max_steps / steps_per_epoch)
    log.info("population of %d: %s, depth %d, width %d, %d parameters each, epochs %d-%d "
             "of %d steps, highway layers by %s", len(members), first.model.name, first.depth,
             first.width, params, start_epoch + 1, epochs, steps_per_epoch,
             "the compiled kernel" if stack == "native" else "XLA")
    for member in members:
        if member.cfg.tensorboard:
            member.writer = tf.summary.create_file_writer(str(member.run_dir / "tensorboard"))
    step = members[0].history[-1]["step"] if members[0].history else 0
    _attach_curves(population, members, step)
    for epoch in range(start_epoch, epochs):
        epoch_start = time.perf_counter()
        alive_at_start = [m.alive for m in members]
        sums = np.zeros((len(members), 3))  # xent sum, correct, examples
        batches = [order.epoch_batches(m.cfg.seed, epoch, len(m.dataset.x_train),
                                       first.batch_size) for m in members]
        for index in range(steps_per_epoch):
            if should_stop():
                raise Interrupted(len(members[0].history), time.perf_counter() - start)
            losses, correct = population.step(
                [m.dataset.x_train[b[index]] for m, b in zip(members, batches)],
                [m.dataset.y_train[b[index]] for m, b in zip(members, batches)], step)
            step += 1
            size = len(batches[0][index])
            for k, member in enumerate(members):
                if not member.alive:
                    continue
                xent = losses[k] if first.loss_reduction == "sum" else losses[k] * size
                sums[k] += (xent, correct[k], size)
                if member.curve is not None:
                    member.curve.after_step(xent / size, size)
                if not math.isfinite(losses[k]):
                    member.diverged_at = step
                    population.freeze(k)
                    if member.curve is not None:
                        member.curve.finish()  # as a run alone stops at this step
                    log.warning("%s: loss became %s at step %d: frozen (status diverged)",
                                member.run_dir.name, losses[k], step)
            if first.max_steps is not None and step >= first.max_steps:
                break
            if not any(m.alive for m in members):
                break
        _end_epoch(population, members, alive_at_start, sums, epoch, step,
                   time.perf_counter() - epoch_start)
        _save_checkpoints(population, members, epoch + 1)
        if (first.max_steps is not None and step >= first.max_steps) or \
                not any(m.alive for m in members):
            break
    for member in members:
        if member.curve is not None and member.alive:
            member.curve.finish()
    summaries = _summaries(population, members, params)
    for k, (member, summary) in enumerate(zip(members, summaries)):
        if member.curve is not None:
            summaries[k] = summary = dataclasses.replace(
                summary, **summary_fields(member.cfg, member.curve, member.dataset))
        summary.wall_seconds = time.perf_counter() - start
        record.write_summary(member.run_dir, summary)
        _remove_checkpoint(member.run_dir)
    return summaries


# -- initial weights, resume, records ---------------------------------------------------


def _initial_weights(members) -> tuple[list[dict], int]:
    """Each member's starting weights, drawn by building its model exactly as a run alone
    does (same seed, same initializers, same order), and the parameter count. Memory is
    freed once, after the last model."""
    initial, params = [], 0
    for member in members:
        seed_everything(member.cfg.seed, free_memory=False)
        ds = member.dataset
        model = build_model(member.cfg, ds.num_features, ds.num_classes, ds.image_shape)
        w_in, b_in, kernel, bias, w_out, b_out = model.get_weights()
        initial.append({"w_in": w_in, "b_in": b_in[None], "kernel": kernel,
                        "bias": bias[:, None], "w_out": w_out, "b_out": b_out[None]})
        params = count_params(model)
    keras.backend.clear_session()
    return initial, params


def _resume(members, initial) -> int:
    """Restore every member from its checkpoint when all hold the same epoch; else start
    all from scratch (their metrics.jsonl cut back accordingly). Returns the start epoch."""
    epochs = {saved_epoch(m.run_dir) for m in members}
    epoch = epochs.pop() if len(epochs) == 1 else 0
    for k, member in enumerate(members):
        rows = record.read_metrics(member.run_dir)[:epoch]
        if epoch:
            with np.load(member.run_dir / CHECKPOINT_FILE) as saved:
                initial[k] = {name: saved[name] for name in saved.files
                              if name not in ("epoch", "diverged_at")}
                diverged_at = int(saved["diverged_at"])
            member.diverged_at = diverged_at if diverged_at >= 0 else None
            log.info("resuming %s after epoch %d", member.run_dir.name, epoch)
        record.rewrite_metrics(member.run_dir, rows)
        member.history = rows
    return epoch


class _Points:
    """What the members' curves measure at a step, computed once for all of them: loss and
    accuracy on each member's fixed validation subset, learning rate, gate activity."""

    def __init__(self, population, members):
        self.population = population
        size = val_subset_size(members[0].cfg, members[0].dataset)
        self.x = [m.dataset.x_val[:size] for m in members]
        self.y = [m.dataset.y_val[:size] for m in members]
        self.gate = [m.dataset.x_val[:GATE_BATCH] for m in members]
        self.step, self.values = None, []

    def at(self, step: int) -> list[dict]:
        if step != self.step:
            loss, accuracy = self.population.evaluate(self.x, self.y)
            gates = self.population.gate_activity(self.gate)
            rates = self.population.learning_rates(step)
            self.values = [{"val_loss": float(loss[k]), "val_accuracy": float(accuracy[k]),
                            "learning_rate": float(rates[k]),
                            "gate_activity": [float(g) for g in gates[k]]}
                           for k in range(len(self.x))]
            self.step = step
        return self.values


def _attach_curves(population, members, step: int) -> None:
    """A StepRecorder per member (curve.jsonl cut back to `step`), and the step-0 points."""
    points = _Points(population, members)
    for k, member in enumerate(members):
        kept = resume_points(member.run_dir, step)
        if not member.cfg.eval_every:
            continue
        listeners = ([TensorBoardPoints(member.run_dir / "tensorboard" / "steps")]
                     if member.cfg.tensorboard else [])
        member.curve = StepRecorder(member.run_dir, member.cfg.eval_every, None, points=kept,
                                    listeners=listeners, step=step)
        member.curve.measure = lambda k=k, curve=member.curve: points.at(curve.step)[k]
    for member in members:
        if member.curve is not None and member.alive:
            member.curve.start()


def _end_epoch(population, members, alive_at_start, sums, epoch, step, seconds):
    """Validation, gate activity and one metrics row for every member that trained."""
    val_loss, val_acc = population.evaluate([m.dataset.x_val for m in members],
                                            [m.dataset.y_val for m in members])
    gates = population.gate_activity([m.dataset.x_val[:GATE_BATCH] for m in members])
    rates = population.learning_rates(step)
    for k, member in enumerate(members):
        if not alive_at_start[k]:
            continue
        xent, correct, seen = sums[k]
        row = {
            "epoch": epoch + 1,
            "step": member.diverged_at if member.diverged_at is not None else step,
            "train_loss": xent / seen if seen else None,
            "train_accuracy": correct / seen if seen else None,
            "val_loss": float(val_loss[k]),
            "val_accuracy": float(val_acc[k]),
            "learning_rate": float(rates[k]),
            "seconds": seconds,
            "gate_activity": [] if not member.alive else [float(g) for g in gates[k]],
        }
        record.append_metrics(member.run_dir, row)
        member.history.append(row)
        _to_tensorboard(member, row)


def _to_tensorboard(member, row) -> None:
    if member.writer is None:
        return
    with member.writer.as_default(step=row["epoch"]):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            if row[key] is not None:
                tf.summary.scalar(f"epoch_{key}", row[key])
        for index, value in enumerate(row["gate_activity"]):
            tf.summary.scalar(f"gate_activity/layer_{index:04d}", value)
    member.writer.flush()


def _save_checkpoints(population, members, epoch: int) -> None:
    """Every member's weights and optimizer state after `epoch`, written atomically."""
    for k, member in enumerate(members):
        path = member.run_dir / CHECKPOINT_FILE
        path.parent.mkdir(exist_ok=True)
        arrays = population.member_arrays(k)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as out:
            np.savez(out, epoch=epoch, diverged_at=member.diverged_at or -1, **arrays)
        os.replace(out.name, path)


def _remove_checkpoint(run_dir) -> None:
    path = Path(run_dir) / CHECKPOINT_FILE
    if path.exists():
        path.unlink()
    if path.parent.exists() and not any(path.parent.iterdir()):
        path.parent.rmdir()


def _summaries(population, members, params) -> list[record.Summary]:
    """Each member's Summary, with test accuracy and lesions for those that trained."""
    test_loss, test_acc = population.evaluate([m.dataset.x_test for m in members],
                                              [m.dataset.y_test for m in members])
    lesions = _lesions(population, members)
    summaries = []
    for k, member in enumerate(members):
        cfg, history = member.cfg, member.history
        epoch, step = record.first_reaching(history, cfg.threshold)
        summary = record.Summary(
            status="completed" if member.alive else "diverged",
            config=OmegaConf.to_container(cfg, resolve=True),
            **record.progress(history),
            threshold=cfg.threshold, epochs_to_threshold=epoch, steps_to_threshold=step,
            params=params,
            gate_activity=history[-1]["gate_activity"] if history else [],
        )
        if member.alive:
            summary.test_loss, summary.test_accuracy = float(test_loss[k]), float(test_acc[k])
            summary.lesion = lesions[k]
        summaries.append(summary)
    return summaries


def _lesions(population, members) -> list:
    """[{"layer", "val_accuracy"}] per member for every lesion_every-th layer (or None)."""
    every = [m.cfg.lesion_every for m in members]
    results = [[] if e else None for e in every]
    depth = members[0].cfg.depth
    layers = sorted({layer for e in every if e for layer in range(0, depth, e)})
    for layer in layers:
        restore = population.shut_gate(layer)
        try:
            _, accuracy = population.evaluate([m.dataset.x_val for m in members],
                                              [m.dataset.y_val for m in members])
        finally:
            restore()
        for k, e in enumerate(every):
            if e and layer % e == 0:
                results[k].append({"layer": layer, "val_accuracy": float(accuracy[k])})
    return results

