"""Which members compute a configuration, and why: the choice a run records.

`model.implementation` is the one name of this choice (config.IMPLEMENTATIONS):
- `scan` (default): stacked highway weights; the compiled kernel (nn.native_stack) for
  stacks of NATIVE_FROM_DEPTH layers or more where it can be built and no GPU is present,
  else XLA (nn.fast_stack);
- `scan_xla`, `scan_native`: one of the two, always (`scan_native` fails in one sentence
  where the kernel cannot run);
- any other dense model (plain, residual, shallow, softmax, one added to the catalog): its
  Keras model's graph vectorized over the members (training.vectorized_members), unless
  `layers` asks for the reference;
- `layers`, `scan_autodiff`, and conv models: one Keras model per member
  (training.keras_members).
Both stacked kernels give a member's numbers up to float rounding; which one ran is written
into summary.json (`engine`), because rounding differences grow over thousands of steps.
"""

from __future__ import annotations

import logging

from highway_study import catalog
from highway_study.config import ConfigError

log = logging.getLogger("highway_study")
NATIVE_FROM_DEPTH = 100  # at depth 50 and below XLA measured as fast or faster (docs/benchmark.md)
STACKED = ("scan", "scan_xla", "scan_native")


def choose_kernel(cfg) -> tuple[str, str]:
    """("native" | "xla" | "vectorized" | "keras", why) for this configuration here."""
    implementation = cfg.model.get("implementation", "scan")
    spec = catalog.spec(cfg.model.name)
    if spec.layout != "dense":
        return "keras", f"model={cfg.model.name} trains as one Keras model per member"
    if spec.family != "highway":
        if implementation == "layers":
            return "keras", "model.implementation=layers"
        return "vectorized", f"model={cfg.model.name}: its Keras graph over the members"
    if implementation not in STACKED:
        return "keras", f"model.implementation={implementation}"
    if implementation == "scan_xla":
        return "xla", "model.implementation=scan_xla"
    import keras

    activation = keras.activations.get(cfg.model.activation)
    if implementation == "scan":
        if gpu_present():
            return "xla", "a GPU is present and the compiled kernel runs on CPUs only"
        if cfg.depth < NATIVE_FROM_DEPTH:
            return "xla", f"depth {cfg.depth} < {NATIVE_FROM_DEPTH}, where XLA is as fast"
    from highway_study.nn import native_stack  # TensorFlow: not needed to check a value

    why_not = native_stack.available(activation)
    if why_not is None:
        return "native", f"model.implementation={implementation}, depth {cfg.depth}"
    if implementation == "scan_native":
        raise ConfigError(f"model.implementation=scan_native cannot be used here: {why_not}")
    return "xla", f"the compiled kernel is not available ({why_not})"


def gpu_present() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))
