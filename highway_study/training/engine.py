"""The one training loop: a population of runs of one shape, a run alone being one member.

Members share the network's shape (model, depth, width, batch size, data, steps) and differ
in what `MEMBER_KEYS` names (seed, carry bias, learning rate, ...). Each member keeps its own
initialisation (drawn by building its Keras model, as the catalog's builder makes it), data
order (`training.order`), optimizer state and run record; which code computes the members
(stacked highway weights, or one Keras model each) is `stack_choice`'s, recorded in
summary.json. A member whose loss becomes non-finite is frozen and recorded as diverged;
a member that stops early (`patience`) is frozen and completes; neither touches the others.

Every member writes metrics.jsonl as epochs end, curve.jsonl every `eval_every` steps, a
checkpoint after every epoch (training.checkpoint: one format, one resume rule) and
summary.json at the end. Asked to stop (`should_stop()` between steps) the loop raises
`Interrupted`; every finished epoch is on disk.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from omegaconf import OmegaConf

from highway_study import data as data_lib
from highway_study import record
from highway_study.models import build_model, count_params
from highway_study.training import checkpoint, order, stopping
from highway_study.training.batched import StackedHighway, default_groups
from highway_study.training.curve import StepRecorder, resume_points, summary_fields
from highway_study.training.curve import val_subset_size
from highway_study.training.keras_members import KerasMembers
from highway_study.training.vectorized_members import VectorizedMembers, vectorizable
from highway_study.training.progress import RunProgress
from highway_study.training.stack_choice import choose_kernel
from highway_study.training.tensorboard import TensorBoardEpochs, TensorBoardPoints

log = logging.getLogger("highway_study.training")
GATE_BATCH = 256

# Config keys in which members of one population may differ; all others must be equal.
MEMBER_KEYS = frozenset({
    "seed", "carry_bias", "optimizer.learning_rate", "threshold",
    "tensorboard", "lesion_every", "optimized_metric", "tags",
})


class Interrupted(Exception):
    """Training stopped because `should_stop` said so; every finished epoch is on disk."""

    def __init__(self, epochs: int, seconds: float):
        super().__init__(f"stopped after epoch {epochs}")
        self.epochs = epochs
        self.seconds = seconds


def seed_everything(seed: int, free_memory: bool = True) -> None:
    """A fresh Keras state and every random generator seeded: a model is built the same way
    every time, and nothing an earlier model left behind (layer names, seed generators)
    leaks in. `free_memory=False` skips Python's garbage collection (a quarter of a second
    in a process holding TensorFlow), for callers that build many models in a row."""
    keras.backend.clear_session(free_memory=free_memory)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def shape_key(cfg) -> str:
    """Equal for configurations that can train in one population."""
    flat = record.flatten_config(OmegaConf.to_container(cfg, resolve=True))
    return json.dumps({k: v for k, v in sorted(flat.items())
                       if k not in MEMBER_KEYS and not k.startswith("tags.")})


def total_steps(cfg, train_size: int) -> int:
    """Optimizer steps the whole run takes (the schedule and the progress bar need it)."""
    steps = order.steps_per_epoch(train_size, cfg.batch_size)
    epochs = cfg.epochs if cfg.max_steps is None else math.ceil(cfg.max_steps / steps)
    return cfg.max_steps or epochs * steps


@dataclass
class Member:
    """One configuration of the population and what it has recorded so far."""

    cfg: object
    run_dir: Path
    dataset: object = None
    history: list = field(default_factory=list)
    diverged_at: int | None = None  # the step whose loss was not finite
    stopped: bool = False  # training ended early (patience) or before this attempt
    wall_seconds: float = 0.0  # what earlier attempts spent
    tensorboard: object = None
    curve: StepRecorder | None = None  # its step-resolution points (None: eval_every=0)
    resume_step: int = 0  # the step its checkpoint holds
    resume_curve: list | None = None  # the curve's running training loss at that step

    @property
    def alive(self) -> bool:
        return self.diverged_at is None and not self.stopped


def train_members(configs, run_dirs, should_stop: Callable[[], bool] | None = None,
                  groups: int | None = None, verbose: bool = False) -> list[record.Summary]:
    """Train every configuration (all of one `shape_key`) at once; return their summaries.

    `groups` splits stacked members into that many independent parts, which TensorFlow runs
    side by side (None: `batched.default_groups`). `verbose` shows a progress bar (on a
    terminal) and logs every epoch's line at INFO.
    """
    start = time.perf_counter()
    should_stop = should_stop or (lambda: False)
    members = [Member(cfg, Path(d)) for cfg, d in zip(configs, run_dirs)]
    first = members[0].cfg
    if len({shape_key(m.cfg) for m in members}) != 1:
        raise ValueError("a population's members must share their shape (see MEMBER_KEYS).")
    kernel, why = choose_kernel(first)  # first: `scan_native` where it cannot run ends here
    _load_data(members)
    models, states, params = _build(members, keep=kernel in ("keras", "vectorized"))
    if kernel == "vectorized" and not vectorizable(models[0]):
        kernel, why = "keras", f"model={first.model.name} holds state besides its weights"
    start_epoch, step = _resume(members, states)
    train_size = len(members[0].dataset.x_train)
    steps_total = total_steps(first, train_size)
    if kernel == "keras":
        engine = KerasMembers(configs, models, states, steps_total)
    elif kernel == "vectorized":
        engine = VectorizedMembers(configs, models, states, steps_total)
    else:
        engine = StackedHighway(configs, states, groups or default_groups(len(members),
                                                                          first.depth),
                                steps_total, kernel=kernel)
    for k, member in enumerate(members):
        if not member.alive:  # diverged or stopped before the checkpoint it resumes from
            engine.freeze(k)
    steps_per_epoch = order.steps_per_epoch(train_size, first.batch_size)
    epochs = first.epochs if first.max_steps is None else math.ceil(
        first.max_steps / steps_per_epoch)
    what = "run" if len(members) == 1 else f"population of {len(members)}"
    log.info("%s: %s, depth %d, width %d, carry_bias %s, %d parameters; %s; kernel %s (%s)",
             what, first.model.name, first.depth, first.width, _biases(members), params,
             schedule_text(steps_total, start_epoch, epochs, steps_per_epoch), kernel, why)
    for member in members:
        if member.cfg.tensorboard:
            member.tensorboard = TensorBoardEpochs(member.run_dir / "tensorboard")
    _attach_curves(engine, members, step)
    progress = RunProgress(steps_total, step, enabled=None if verbose else False)
    try:
        with progress:
            step = _train(engine, members, start_epoch, epochs, steps_per_epoch, step,
                          should_stop, progress, verbose,
                          lambda m: m.wall_seconds + time.perf_counter() - start)
    except Interrupted as interrupt:
        interrupt.seconds = time.perf_counter() - start
        raise
    for member in members:
        if member.curve is not None and member.diverged_at is None:
            member.curve.finish()
    summaries = _summaries(engine, members, params, kernel, why)
    for member, summary in zip(members, summaries):
        summary.wall_seconds = member.wall_seconds + time.perf_counter() - start
        record.write_summary(member.run_dir, summary)
        checkpoint.remove(member.run_dir)  # only now: a run stopped before resumes here
        if verbose:
            log.info("run record: %s", member.run_dir / record.SUMMARY_FILE)
    return summaries


def _train(engine, members, start_epoch, epochs, steps_per_epoch, step, should_stop,
           progress, verbose, elapsed) -> int:
    """The epochs from `start_epoch`; returns the step reached."""
    first = members[0].cfg
    for epoch in range(start_epoch, epochs):
        if not any(m.alive for m in members):
            break
        epoch_start = time.perf_counter()
        alive_at_start = [m.alive for m in members]
        engine.reseed(lambda k, count, epoch=epoch: order.layer_seeds(
            members[k].cfg.seed, epoch, count))
        sums = np.zeros((len(members), 3))  # xent sum, correct, examples
        batches = [order.epoch_batches(m.cfg.seed, epoch, len(m.dataset.x_train),
                                       first.batch_size) for m in members]
        for index in range(steps_per_epoch):
            if should_stop():
                raise Interrupted(len(members[0].history), 0.0)
            losses, correct = engine.step(
                [m.dataset.x_train[b[index]] for m, b in zip(members, batches)],
                [m.dataset.y_train[b[index]] for m, b in zip(members, batches)], step)
            step += 1
            progress.advance()
            size = len(batches[0][index])
            for k, member in enumerate(members):
                if member.alive:
                    _after_step(engine, k, member, losses[k], correct[k], size, step, sums)
            if first.max_steps is not None and step >= first.max_steps:
                break
            if not any(m.alive for m in members):
                break
        ended = (epoch + 1 >= epochs or (first.max_steps is not None
                                         and step >= first.max_steps))
        _end_epoch(engine, members, alive_at_start, sums, epoch, step,
                   time.perf_counter() - epoch_start, verbose, progress)
        for k, member in enumerate(members):
            if alive_at_start[k] and member.alive and member.cfg.patience is not None and \
                    stopping.patience_exhausted(member.history, member.cfg.patience):
                member.stopped = True
                engine.freeze(k)
                log.info("%s: validation accuracy has not improved for %d epochs: stopping",
                         member.run_dir.name, member.cfg.patience)
        for k, member in enumerate(members):
            if alive_at_start[k]:
                _save(engine, k, member, epoch + 1, step, elapsed(member),
                      trained=ended or not member.alive)
        if ended:
            break
    return step


def _after_step(engine, k, member, loss, correct, size, step, sums) -> None:
    """Count member k's step; freeze it when its loss is not finite."""
    loss_sum = loss if member.cfg.loss_reduction == "sum" else loss * size
    sums[k] += (loss_sum, correct, size)
    if member.curve is not None:
        member.curve.after_step(loss_sum / size, size)
    if not math.isfinite(loss):
        member.diverged_at = step
        engine.freeze(k)
        if member.curve is not None:
            member.curve.finish()  # the last point: where it stopped
        log.warning("%s: loss became %s at step %d: stopping (status diverged)",
                    member.run_dir.name, loss, step)


def _save(engine, k, member, epoch, step, wall_seconds, trained) -> None:
    curve = member.curve
    checkpoint.save(member.run_dir, epoch, engine.member_state(k), {
        "step": step if member.diverged_at is None else member.diverged_at,
        "wall_seconds": wall_seconds,
        "trained": bool(trained),
        "diverged_at": member.diverged_at,
        "stopped": member.stopped,
        "curve": None if curve is None else [curve.loss_sum, curve.examples],
    })


# -- data, models, resume -----------------------------------------------------------------


def _load_data(members) -> None:
    """Each member's data; members of one seed share it (and its split)."""
    loaded = {}
    for member in members:
        member.run_dir.mkdir(parents=True, exist_ok=True)
        key = (json.dumps(OmegaConf.to_container(member.cfg.data, resolve=True)),
               member.cfg.seed)
        if key not in loaded:
            loaded[key] = data_lib.load(member.cfg.data, member.cfg.seed)
            log.info("data: %s", loaded[key].source)
        member.dataset = loaded[key]


def _build(members, keep: bool) -> tuple[list, list[dict], int]:
    """Every member's Keras model (kept only when they compute the members), its starting
    state and the parameter count: each model built exactly as its seed draws it."""
    models, states, params = [], [], 0
    for member in members:
        seed_everything(member.cfg.seed, free_memory=False)
        ds = member.dataset
        model = build_model(member.cfg, ds.num_features, ds.num_classes, ds.image_shape)
        states.append({"weights": model.get_weights(), "slots": {}})
        params = count_params(model)
        if keep:
            models.append(model)
    if not keep:
        keras.backend.clear_session()
    return models, states, params


def _resume(members, states) -> tuple[int, int]:
    """Restore every member from its newest usable checkpoint. Members still training
    resume from one common epoch (the earliest any of them can); a member whose training
    had ended resumes where it ended, frozen. Returns (start epoch, step)."""
    from highway_study.training.legacy import read_keras_checkpoint

    common = min((epoch for epoch, info in map(checkpoint.latest, (m.run_dir for m in members))
                   if not info.get("trained")), default=0)
    while True:
        resumes = []
        for member in members:
            config = OmegaConf.to_container(member.cfg, resolve=True)
            resumes.append(checkpoint.restore(
                member.run_dir, config, at_most=None if _ended(member) else common,
                read_keras=lambda path, m=member: read_keras_checkpoint(m.cfg, m.dataset, path)))
        training = [r.epoch for r in resumes if not r.trained]
        if not training or len(set(training)) == 1 and training[0] <= common:
            break
        common = min(training)
    step = 0
    for k, (member, resume) in enumerate(zip(members, resumes)):
        member.history = resume.history
        member.wall_seconds = resume.wall_seconds
        if resume.state is not None:
            states[k] = resume.state
        member.diverged_at = resume.info.get("diverged_at")
        member.stopped = resume.trained and member.diverged_at is None
        member.resume_step = int(resume.info.get("step") or 0)
        member.resume_curve = resume.info.get("curve")
        if not resume.trained:
            step = member.resume_step
    epoch = min([r.epoch for r in resumes if not r.trained], default=0)
    return epoch, step


def _ended(member) -> bool:
    """Whether the member's newest usable checkpoint says its training ended."""
    return bool(checkpoint.latest(member.run_dir)[1].get("trained"))


def schedule_text(steps: int, start_epoch: int, epochs: int, steps_per_epoch: int) -> str:
    """"5000 steps (epochs 1-14, 360 steps each)", "30 steps (part of one epoch of 40)":
    the run's length and what this attempt trains."""
    if steps < steps_per_epoch:
        return f"{steps} steps (part of one epoch of {steps_per_epoch})"
    if start_epoch + 1 >= epochs:
        part = f"epoch {epochs}" if epochs > 1 else "1 epoch"
    else:
        part = f"epochs {start_epoch + 1}-{epochs}"
    return f"{steps} steps ({part}, {steps_per_epoch} steps each)"


def _biases(members) -> str:
    values = sorted({float(m.cfg.carry_bias) for m in members})
    return ", ".join(f"{v:g}" for v in values)


# -- points, epochs, summaries --------------------------------------------------------------


class _Points:
    """What the members' curves measure at a step, computed once for all of them: loss and
    accuracy on each member's fixed validation subset, learning rate, gate activity."""

    def __init__(self, engine, members):
        self.engine = engine
        size = val_subset_size(members[0].cfg, members[0].dataset)
        self.x = [m.dataset.x_val[:size] for m in members]
        self.y = [m.dataset.y_val[:size] for m in members]
        self.gate = [m.dataset.x_val[:GATE_BATCH] for m in members]
        self.step, self.values = None, []

    def at(self, step: int) -> list[dict]:
        if step != self.step:
            loss, accuracy = self.engine.evaluate(self.x, self.y)
            gates = self.engine.gate_activity(self.gate)
            rates = self.engine.rates(step)
            self.values = [{"val_loss": float(loss[k]), "val_accuracy": float(accuracy[k]),
                            "learning_rate": float(rates[k]), "gate_activity": gates[k]}
                           for k in range(len(self.x))]
            self.step = step
        return self.values


def _attach_curves(engine, members, step: int) -> None:
    """A StepRecorder per member (curve.jsonl cut back to its step), with the running
    training loss of the steps since its last point, and the step-0 points."""
    points = _Points(engine, members)
    for k, member in enumerate(members):
        at = member.resume_step
        kept = resume_points(member.run_dir, at)
        if not member.cfg.eval_every:
            continue
        listeners = ([TensorBoardPoints(member.run_dir / "tensorboard" / "steps")]
                     if member.cfg.tensorboard else [])
        member.curve = StepRecorder(member.run_dir, member.cfg.eval_every, None, points=kept,
                                    listeners=listeners, step=at)
        running = member.resume_curve
        if running and at:
            member.curve.loss_sum, member.curve.examples = float(running[0]), int(running[1])
        member.curve.measure = lambda k=k, curve=member.curve: points.at(curve.step)[k]
    for member in members:
        if member.curve is not None and member.alive:
            member.curve.start()


def _end_epoch(engine, members, alive_at_start, sums, epoch, step, seconds, verbose,
               progress) -> None:
    """Validation, gate activity and one metrics row for every member that trained."""
    val_loss, val_acc = engine.evaluate([m.dataset.x_val for m in members],
                                        [m.dataset.y_val for m in members])
    gates = engine.gate_activity([m.dataset.x_val[:GATE_BATCH] for m in members])
    rates = engine.rates(step)
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
            "gate_activity": [] if member.diverged_at is not None else gates[k],
        }
        record.append_metrics(member.run_dir, row)
        member.history.append(row)
        if member.tensorboard is not None:
            member.tensorboard(row)
    trained = [k for k, alive in enumerate(alive_at_start) if alive]
    best = max(trained, key=lambda k: val_acc[k]) if trained else None
    if best is not None:
        progress.show_accuracy(float(val_acc[best]))
    level = logging.INFO if verbose or len(members) > 1 else logging.DEBUG
    if len(members) == 1 and trained:
        row = members[0].history[-1]
        log.log(level, "epoch %3d  step %6d  train loss %s acc %s  val loss %s acc %s  %.1f s",
                row["epoch"], row["step"], _fmt(row["train_loss"]),
                _pct(row["train_accuracy"]), _fmt(row["val_loss"]),
                _pct(row["val_accuracy"]), seconds)
    elif trained:  # the leader so far, so the number never goes down between lines
        leader = max(trained, key=lambda k: best_so_far(members[k].history))
        log.log(level, "epoch %d  step %d  %d of %d training  best val acc so far %s (%s)  "
                "%.1f s", epoch + 1, step, sum(m.alive for m in members), len(members),
                _pct(best_so_far(members[leader].history)), members[leader].run_dir.name,
                seconds)


def best_so_far(history: list[dict]) -> float:
    """A member's best validation accuracy over the epochs recorded (0 before any, or if
    not a number: a diverged member never leads)."""
    best = record.progress(history)["best_val_accuracy"]
    return best if best is not None and math.isfinite(best) else 0.0


def _summaries(engine, members, params, kernel, why) -> list[record.Summary]:
    """Each member's Summary, with test accuracy and lesions for those that did not
    diverge."""
    test_loss, test_acc = engine.evaluate([m.dataset.x_test for m in members],
                                          [m.dataset.y_test for m in members])
    lesions = engine.lesions([m.cfg.lesion_every for m in members],
                             [m.dataset.x_val for m in members],
                             [m.dataset.y_val for m in members])
    summaries = []
    for k, member in enumerate(members):
        cfg, history = member.cfg, member.history
        epoch, step = record.first_reaching(history, cfg.threshold)
        summary = record.Summary(
            status="completed" if member.diverged_at is None else "diverged",
            config=OmegaConf.to_container(cfg, resolve=True),
            **record.progress(history),
            threshold=cfg.threshold, epochs_to_threshold=epoch, steps_to_threshold=step,
            params=params, data_source=member.dataset.source,
            gate_activity=history[-1]["gate_activity"] if history else [],
            engine={"kernel": kernel, "why": why},
        )
        if member.diverged_at is None:
            summary.test_loss, summary.test_accuracy = float(test_loss[k]), float(test_acc[k])
            summary.lesion = lesions[k]
            log.info("%s: test accuracy %.2f%% (best validation %.2f%%)", member.run_dir.name,
                     100 * summary.test_accuracy, 100 * (summary.best_val_accuracy or 0.0))
        if member.curve is not None:
            summary = dataclasses.replace(
                summary, **summary_fields(cfg, member.curve, member.dataset))
        summaries.append(summary)
    return summaries


def _fmt(value):
    return "nan" if value is None or not math.isfinite(value) else f"{value:.4f}"


def _pct(value):
    return "  nan" if value is None or not math.isfinite(value) else f"{100 * value:5.1f}%"
