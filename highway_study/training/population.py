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
from highway_study.models.lesion import SHUT
from highway_study.nn import fast_stack
from highway_study.training import GATE_BATCH, Interrupted, order, seed_everything, total_steps
from highway_study.training.curve import StepRecorder, resume_points
from highway_study.training.optim import learning_rate
from highway_study.training.recorder import TensorBoardPoints
from highway_study.training.stepwise import summary_fields, val_subset_size

log = logging.getLogger(__name__)

# Config keys in which members of one population may differ; all others must be equal.
MEMBER_KEYS = frozenset({
    "seed", "carry_bias", "optimizer.learning_rate", "threshold",
    "tensorboard", "lesion_every", "optimized_metric", "tags",
})
CHECKPOINT_FILE = "checkpoint/population.npz"
EVAL_BATCH = 1024


def unsupported(cfg) -> str | None:
    """Why `cfg` cannot train in a population (it then trains alone), or None."""
    spec = catalog.spec(cfg.model.name)
    if not (spec.family == "highway" and spec.layout == "dense"):
        return f"model={cfg.model.name} (populations train fully connected highway nets)"
    if cfg.model.implementation != "scan":
        return f"model.implementation={cfg.model.implementation} (populations use scan)"
    if cfg.optimizer.name not in ("sgd", "momentum"):
        return f"optimizer={cfg.optimizer.name} (populations use sgd or momentum)"
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
    population = _Population(members, initial, groups or fast_stack.default_streams(),
                             total_steps(first, len(members[0].dataset.x_train)))
    for k, member in enumerate(members):
        if not member.alive:  # diverged before the checkpoint it resumes from
            population.freeze(k)
    steps_per_epoch = math.ceil(len(members[0].dataset.x_train) / first.batch_size)
    epochs = first.epochs if first.max_steps is None else math.ceil(
        first.max_steps / steps_per_epoch)
    log.info("population of %d: %s, depth %d, width %d, %d parameters each, epochs %d-%d "
             "of %d steps", len(members), first.model.name, first.depth, first.width, params,
             start_epoch + 1, epochs, steps_per_epoch)
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


# -- the batched computation ------------------------------------------------------------


class _Population:
    """The members' weights and optimizer state, stacked, in `groups` independent parts."""

    def __init__(self, members, initial, groups: int, total_steps: int | None = None):
        cfg = members[0].cfg
        self.activation = keras.activations.get(cfg.model.activation)
        self.mean_loss = cfg.loss_reduction != "sum"
        self.momentum_used = cfg.optimizer.name == "momentum"
        count = len(members)
        groups = max(1, min(groups, count))
        bounds = np.linspace(0, count, groups + 1).round().astype(int)
        self.slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        self.groups = [_Group([initial[k] for k in range(s.start, s.stop)],
                              [members[k].cfg for k in range(s.start, s.stop)],
                              self.momentum_used, total_steps) for s in self.slices]
        self._step = tf.function(self._step_graph, reduce_retracing=True)
        self._evaluate = tf.function(self._evaluate_graph, reduce_retracing=True)

    def _locate(self, k: int):
        for group, part in zip(self.groups, self.slices):
            if part.start <= k < part.stop:
                return group, k - part.start
        raise IndexError(k)

    def forward(self, group, x, training: bool):
        h = self.activation(tf.matmul(x, group.w_in) + group.b_in)
        h = fast_stack.highway_stack(h, group.kernel, group.bias, self.activation,
                                     training=training, streams=1)
        return tf.matmul(h, group.w_out) + group.b_out

    def _step_graph(self, xs, ys, step):
        losses, correct = [], []
        for group, x, y in zip(self.groups, xs, ys):
            with tf.GradientTape() as tape:
                logits = self.forward(group, x, training=True)
                xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
                loss = tf.reduce_sum(xent, axis=1)
                if self.mean_loss:
                    loss = loss / tf.cast(tf.shape(y)[1], loss.dtype)
                total = tf.reduce_sum(loss)  # members' gradients stay their own
            grads = tape.gradient(total, group.variables)
            group.apply(grads, tf.math.is_finite(loss), step)
            losses.append(loss)
            correct.append(tf.reduce_sum(tf.cast(
                tf.argmax(logits, axis=-1, output_type=y.dtype) == y, tf.float32), axis=1))
        return tf.concat(losses, 0), tf.concat(correct, 0)

    def step(self, xs: list, ys: list, step: int = 0):
        """Optimizer step `step` (0-based, what the schedule sees) of every member on its
        batch; (losses, correct counts)."""
        x_parts = [tf.constant(np.stack(xs[s])) for s in self.slices]
        y_parts = [tf.constant(np.stack(ys[s])) for s in self.slices]
        losses, correct = self._step(x_parts, y_parts, tf.constant(step, tf.int64))
        return losses.numpy(), correct.numpy()

    def learning_rates(self, step: int) -> np.ndarray:
        """Every member's learning rate after `step` steps, as its optimizer reports it."""
        return np.concatenate([
            np.broadcast_to(np.asarray(group.lr if group.schedule is None
                                       else group.schedule(step)), group.lr.shape)
            for group in self.groups])

    def freeze(self, k: int) -> None:
        """Member k keeps its weights from now on (its loss was not finite)."""
        group, i = self._locate(k)
        group.frozen[i] = True
        group.sync_frozen()

    def _evaluate_graph(self, xs, ys):
        sums, correct = [], []
        for group, x, y in zip(self.groups, xs, ys):
            logits = self.forward(group, x, training=False)
            xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            sums.append(tf.reduce_sum(xent, axis=1))
            correct.append(tf.reduce_sum(tf.cast(
                tf.argmax(logits, axis=-1, output_type=y.dtype) == y, tf.float32), axis=1))
        return tf.concat(sums, 0), tf.concat(correct, 0)

    def evaluate(self, xs: list, ys: list) -> tuple[np.ndarray, np.ndarray]:
        """(mean cross-entropy, accuracy) of every member on its own (x, y)."""
        count = len(xs[0])
        sums, correct = np.zeros(len(xs)), np.zeros(len(xs))
        for begin in range(0, count, EVAL_BATCH):
            chunk = slice(begin, begin + EVAL_BATCH)
            s, c = self._evaluate(
                [tf.constant(np.stack([x[chunk] for x in xs[p]])) for p in self.slices],
                [tf.constant(np.stack([y[chunk] for y in ys[p]])) for p in self.slices])
            sums += s.numpy()
            correct += c.numpy()
        return sums / count, correct / count

    def gate_activity(self, xs: list) -> np.ndarray:
        """[members, depth] mean transform-gate activity on each member's gate batch.

        Member by member, with exactly a run alone's computation: a batched mean would sum
        in an order that depends on the population's size, and a member's record would
        then depend on who else trained beside it.
        """
        rows = []
        for group, part in zip(self.groups, self.slices):
            kernel, bias = group.kernel.numpy(), group.bias.numpy()
            w_in, b_in = group.w_in.numpy(), group.b_in.numpy()
            for i, x in enumerate(xs[part]):
                h = self.activation(tf.matmul(x, w_in[i]) + b_in[i, 0])
                rows.append(np.asarray(fast_stack.gate_means(
                    h, tf.constant(kernel[:, i]), tf.constant(bias[:, i, 0]),
                    self.activation)))
        return np.stack(rows)

    def shut_gate(self, layer: int):
        """Force layer `layer`'s transform gate shut in every member; returns a restorer."""
        saved = [group.bias[layer].numpy() for group in self.groups]
        for group in self.groups:
            width = group.bias.shape[-1] // 2
            value = group.bias[layer].numpy()
            value[..., width:] = SHUT
            group.bias[layer].assign(value)

        def restore():
            for group, value in zip(self.groups, saved):
                group.bias[layer].assign(value)

        return restore

    def member_arrays(self, k: int) -> dict:
        group, i = self._locate(k)
        return group.member_arrays(i)


class _Group:
    """Part of a population: its members' weights on a member axis, and their SGD state.

    Layout: w_in [K, F, w], b_in [K, 1, w], kernel [depth, K, w, 2w], bias [depth, K, 1, 2w],
    w_out [K, w, C], b_out [K, 1, C] (the bias axes of length 1 broadcast over the batch).
    """

    NAMES = ("w_in", "b_in", "kernel", "bias", "w_out", "b_out")
    MEMBER_AXIS = {"w_in": 0, "b_in": 0, "kernel": 1, "bias": 1, "w_out": 0, "b_out": 0}

    def __init__(self, initial: list[dict], configs, momentum_used: bool,
                 total_steps: int | None = None):
        for name in self.NAMES:
            axis = self.MEMBER_AXIS[name]
            setattr(self, name, tf.Variable(np.stack([w[name] for w in initial], axis=axis),
                                            name=name))
        self.variables = [getattr(self, name) for name in self.NAMES]
        self.lr = tf.constant([float(c.optimizer.learning_rate) for c in configs], tf.float32)
        # The members' rates as Keras's optimizer computes them at each step (the same
        # schedule object, given all members' initial rates at once).
        self.schedule = learning_rate(configs[0].optimizer.copy(), total_steps)
        if not isinstance(self.schedule, keras.optimizers.schedules.LearningRateSchedule):
            self.schedule = None
        elif isinstance(self.schedule, keras.optimizers.schedules.CosineDecay):
            self.schedule = keras.optimizers.schedules.CosineDecay(self.lr, total_steps)
        self.momentum = tf.constant(float(configs[0].optimizer.momentum), tf.float32)
        self.momentum_used = momentum_used
        self.slots = [tf.Variable(np.stack([w.get(f"m_{name}", np.zeros_like(w[name]))
                                            for w in initial], axis=self.MEMBER_AXIS[name]),
                                  name=f"m_{name}") for name in self.NAMES] \
            if momentum_used else []
        self.frozen = np.zeros(len(configs), bool)
        self._frozen = tf.Variable(self.frozen, trainable=False)

    def apply(self, grads, finite, step):
        """SGD (with momentum) per member, with Keras's SGD arithmetic; members whose loss is
        not finite, or who diverged before, get no step (multiply_no_nan: their possibly
        non-finite gradients times a zero learning rate give exactly 0)."""
        moves = tf.logical_and(finite, tf.logical_not(self._frozen))
        rate = self.lr if self.schedule is None else self.schedule(step)
        lr = tf.where(moves, rate, 0.0)
        for index, (var, grad) in enumerate(zip(self.variables, grads)):
            delta = tf.math.multiply_no_nan(grad, self._broadcast(lr, var, self.NAMES[index]))
            if self.momentum_used:  # accum = accum * momentum - delta; var += accum
                tf.raw_ops.ResourceApplyKerasMomentum(
                    var=var.handle, accum=self.slots[index].handle, lr=tf.constant(1.0),
                    grad=delta, momentum=self.momentum)
            else:
                tf.raw_ops.ResourceApplyGradientDescent(var=var.handle, alpha=tf.constant(1.0),
                                                        delta=delta)

    def _broadcast(self, values, var, name):
        shape = [1] * len(var.shape)
        shape[self.MEMBER_AXIS[name]] = -1
        return tf.reshape(values, shape)

    def sync_frozen(self):
        self._frozen.assign(self.frozen)

    def member_arrays(self, i: int) -> dict:
        arrays = {}
        for index, name in enumerate(self.NAMES):
            arrays[name] = np.take(self.variables[index].numpy(), i, self.MEMBER_AXIS[name])
            if self.momentum_used:
                arrays[f"m_{name}"] = np.take(self.slots[index].numpy(), i,
                                              self.MEMBER_AXIS[name])
        return arrays


# -- initial weights, resume, records ---------------------------------------------------


def _initial_weights(members) -> tuple[list[dict], int]:
    """Each member's starting weights, drawn by building its model exactly as a run alone
    does (same seed, same initializers, same order), and the parameter count."""
    initial, params = [], 0
    for member in members:
        seed_everything(member.cfg.seed)
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

