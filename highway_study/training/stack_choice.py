"""Which implementation computes a population's highway layers: XLA or the compiled kernel.

$HIGHWAY_STUDY_STACK (config.requested_stack) picks it: "auto" (the default) takes the
compiled kernel (nn.native_stack) for stacks of NATIVE_FROM_DEPTH layers or more where it
can be built here, else XLA (nn.fast_stack); "native" insists on the kernel, "xla" never
uses it. Both give a member's numbers up to float rounding; only the speed differs
(docs/benchmark.md, "A compiled kernel").
"""

from __future__ import annotations

import logging

from highway_study.config import STACK_ENV, ConfigError, requested_stack

log = logging.getLogger("highway_study")
NATIVE_FROM_DEPTH = 100  # at depth 50 and below XLA measured as fast or faster (docs/benchmark.md)


def choose_stack(activation, depth: int, wanted: str | None = None) -> str:
    """"native" or "xla" for a population of this activation and depth."""
    wanted = wanted or requested_stack()
    if wanted == "xla" or (wanted == "auto" and depth < NATIVE_FROM_DEPTH):
        return "xla"
    from highway_study.nn import native_stack  # TensorFlow: not needed to check a value

    why_not = native_stack.available(activation)
    if why_not is None:
        return "native"
    if wanted == "native":
        raise ConfigError(f"{STACK_ENV}=native cannot be used here: {why_not}")
    log.info("highway layers by XLA: the compiled kernel is not available (%s)", why_not)
    return "xla"
