"""One benchmark cell: a model built as training builds it, timed one window at a time.

Runs in its own process (`python -m highway_study.bench.cell SPEC`), driven by
`highway_study.bench.benchmark` over stdin/stdout, one JSON line per answer:
- on start it builds the model, runs the warm-up steps and answers
  {"build_first_step_s": ...} (seconds from building the model to the end of the first
  training step; TensorFlow's import is not included);
- to each "window" line it fits `steps` more steps and answers {"steps_per_s": ...};
- to "done" it answers {"peak_rss_mb": ..., ...} and exits.
Why windows on command: the parent interleaves the windows of all variants of one depth
(reference, variant A, variant B, reference, ...), so that a machine whose speed drifts
between minutes (a shared, 2-core one) slows all of them alike, and the ratios hold.
"""

from __future__ import annotations

import json
import resource
import sys
import time

FEATURES, CLASSES = 784, 10

# name -> (config overrides, compile() arguments, op determinism, what it is)
VARIANTS = {
    "reference": ({"model.implementation": "layers"}, {}, True,
                  "one HighwayDense per layer, default compile (the model a user writes first)"),
    "scan_autodiff": ({"model.implementation": "scan_autodiff"}, {}, True,
                      "stacked weights, tf.foldl, TensorFlow autodiff, no XLA"),
    "scan_autodiff_jit": ({"model.implementation": "scan_autodiff"}, {"jit_compile": True}, False,
                          "stacked weights, tf.foldl, whole train step compiled by XLA "
                          "(needs op determinism off: Keras drops jit_compile otherwise)"),
    "scan": ({"model.implementation": "scan"}, {}, True,
             "the default: XLA-compiled loops with a hand-written gradient (nn/fast_stack.py), "
             "the batch cut into slices run side by side (model.streams=null: 2 slices where "
             "TensorFlow has two inter-op threads)"),
    "scan_1stream": ({"model.implementation": "scan", "model.streams": 1}, {}, True,
                     "the default stack with model.streams=1: one XLA loop for the whole batch"),
    "scan_jit": ({"model.implementation": "scan"}, {"jit_compile": True}, False,
                 "the default stack inside a train step compiled whole by XLA "
                 "(op determinism off, as Keras requires for jit_compile)"),
    "scan_spe10": ({"model.implementation": "scan"}, {"steps_per_execution": 10}, True,
                   "the default plus steps_per_execution=10"),
}


class Cell:
    """A compiled model on random MNIST-shaped data (784 features, 10 classes)."""

    def __init__(self, variant: str, depth: int, width: int, batch: int, steps: int,
                 threads: int | None = None):
        import keras
        import numpy as np
        from omegaconf import OmegaConf

        from highway_study.config import Config
        from highway_study.models import build_model
        from highway_study.training import seed_everything
        from highway_study.training.optim import make_loss, make_optimizer, to_dataset

        limit_threads(threads)
        overrides, compile_args, determinism, _ = VARIANTS[variant]
        cfg = OmegaConf.structured(Config)
        cfg.model.name = "highway_fc"
        for key, value in overrides.items():
            OmegaConf.update(cfg, key, value)
        cfg.data.name, cfg.optimizer.name = "synthetic", "sgd"
        cfg.depth, cfg.width, cfg.batch_size = depth, width, batch
        if determinism:
            seed_everything(cfg.seed)
        else:
            keras.utils.set_random_seed(cfg.seed)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(8 * batch, FEATURES)).astype(np.float32)
        y = rng.integers(0, CLASSES, size=8 * batch)
        self.dataset = to_dataset(x, y, batch).repeat()
        self.steps = steps
        self.per_execution = compile_args.get("steps_per_execution", 1)
        imported = time.perf_counter()

        self.model = build_model(cfg, FEATURES, CLASSES)
        self.model.compile(
            optimizer=make_optimizer(cfg.optimizer), loss=make_loss(cfg.loss_reduction),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                     keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="xent")],
            **compile_args,
        )
        marks = self._fit(2 * self.per_execution)  # warm-up: the first two executions
        self.build_first_step_s = marks[0][1] - imported
        self.xla = bool(self.model.jit_compile) or cfg.model.implementation == "scan"

    def _fit(self, steps: int) -> list[tuple[int, float]]:
        timer = _step_timer()
        self.model.fit(self.dataset, epochs=1, steps_per_epoch=steps, callbacks=[timer],
                       verbose=0)
        return timer.marks

    def window(self) -> float:
        """Steady steps/s over `steps` steps, timed from the end of the window's first execution."""
        total = self.steps + self.per_execution
        total += -total % self.per_execution
        marks = self._fit(total)
        (first_done, first_time), (last_done, last_time) = marks[0], marks[-1]
        return (last_done - first_done) / (last_time - first_time)


class PopulationCell:
    """A population of `members` highway nets of the blog's setup on random MNIST-shaped
    data, stepped by the engine's own members (training.batched), timed like a Cell: one
    window is `steps` population steps. `members=1` is the engine's run alone."""

    BIASES = (-1, -2, -3, -5, -10, -15, -20)
    IMPLEMENTATIONS = {None: "scan", "auto": "scan", "xla": "scan_xla",
                       "native": "scan_native"}

    def __init__(self, depth: int, width: int, batch: int, steps: int, members: int,
                 groups: int | None = None, threads: int | None = None,
                 op_threads: int | None = None, stack: str | None = None):
        """`op_threads`: threads per op (None: the population launcher's own,
        POPULATION_OP_THREADS; 0: TensorFlow's default, all cores). `stack`: "xla",
        "native" or "auto" (None: what model.implementation=scan chooses, as a real run)."""
        from highway_study.runtime.threads import POPULATION_OP_THREADS

        per_op = POPULATION_OP_THREADS if op_threads is None else (op_threads or None)
        limit_threads(threads, per_op)
        import numpy as np

        from highway_study.training import engine
        from highway_study.training.batched import StackedHighway, default_groups
        from highway_study.training.stack_choice import choose_kernel

        configs = [blog_config(depth, width, batch, self.BIASES[k % len(self.BIASES)],
                               seed=k // len(self.BIASES)) for k in range(members)]
        for cfg in configs:
            cfg.model.implementation = self.IMPLEMENTATIONS[stack]
        rng = np.random.default_rng(0)
        self.x = rng.random((8, members, batch, FEATURES), dtype=np.float32)
        self.y = rng.integers(0, CLASSES, size=(8, members, batch)).astype(np.int32)
        imported = time.perf_counter()
        _, states, _ = engine._build([engine.Member(cfg, None, dataset=_Shapes())
                                      for cfg in configs], keep=False)
        self.stack, _ = choose_kernel(configs[0])
        self.population = StackedHighway(configs, states,
                                         groups or default_groups(members, depth),
                                         kernel=self.stack)
        self.steps, self.members = steps, members
        self._run(2)
        self.build_first_step_s = time.perf_counter() - imported
        self.xla = True

    def _run(self, steps: int) -> None:
        for i in range(steps):
            self.population.step(list(self.x[i % 8]), list(self.y[i % 8]))

    def window(self) -> float:
        start = time.perf_counter()
        self._run(self.steps)
        return self.steps / (time.perf_counter() - start)


class _Shapes:
    """What the model builders ask of a data set."""

    num_features, num_classes, image_shape = FEATURES, CLASSES, None


def blog_config(depth: int, width: int, batch: int, carry_bias: float, seed: int = 0):
    """The blog's setup (conf/setup/blog.yaml) for a highway_fc net of this shape."""
    from omegaconf import OmegaConf

    from highway_study.config import Config

    cfg = OmegaConf.structured(Config)
    cfg.model.name, cfg.data.name, cfg.optimizer.name = "highway_fc", "synthetic", "sgd"
    cfg.model.kernel_initializer, cfg.model.init_stddev = "truncated_normal", 0.1
    cfg.model.bias_init, cfg.optimizer.learning_rate = 0.1, 0.01
    cfg.loss_reduction = "sum"
    cfg.depth, cfg.width, cfg.batch_size = depth, width, batch
    cfg.carry_bias, cfg.seed = float(carry_bias), seed
    return cfg


def limit_threads(threads: int | None, per_op: int | None = None) -> None:
    """A job's share of the cores, set before TensorFlow's first op."""
    from highway_study.runtime.threads import limit_threads as limit

    limit(threads, per_op)


def _step_timer():
    import keras

    class StepTimer(keras.callbacks.Callback):
        """Time at the end of every execution, with the number of steps done so far."""

        def __init__(self):
            super().__init__()
            self.marks: list[tuple[int, float]] = []

        def on_train_batch_end(self, batch, logs=None):
            float((logs or {}).get("loss", 0.0))  # wait for the step, as RunRecorder does
            self.marks.append((batch + 1, time.perf_counter()))

    return StepTimer()


def answer(payload: dict) -> None:
    print(json.dumps(payload), flush=True)


def timed_window(cell) -> dict:
    """One window's steps/s, and how many cores the cell's process kept busy meanwhile
    (CPU seconds over wall seconds): whether its threads had work for every core."""
    cpu, wall = time.process_time(), time.perf_counter()  # process_time: user + system
    rate = cell.window()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"steps_per_s": rate, "cores_busy": cpu / wall}


def serve(spec: dict) -> None:
    """Build the cell, then answer the parent's commands until "done" or end of input."""
    import tensorflow as tf

    cell = PopulationCell(**spec) if spec.pop("population", False) else Cell(**spec)
    answer({"build_first_step_s": cell.build_first_step_s,
            **({"stack": cell.stack} if hasattr(cell, "stack") else {})})
    for command in sys.stdin:
        if command.strip() == "window":
            answer(timed_window(cell))
        elif command.strip() == "done":
            break
    answer({
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "devices": [d.name for d in tf.config.get_visible_devices()],
        "xla_effective": cell.xla,
    })


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]))
