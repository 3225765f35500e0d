"""Which implementation computes a population's highway layers: XLA or the compiled kernel.

$HIGHWAY_STUDY_STACK picks it: "auto" (the default) takes the compiled kernel
(nn.native_stack) for stacks of NATIVE_FROM_DEPTH layers or more where it can be built here,
else XLA (nn.fast_stack); "native" insists on the kernel, "xla" never uses it. Both give a
member's numbers up to float rounding; only the speed differs (docs/benchmark.md,
"A compiled kernel").
"""

from __future__ import annotations

import logging
import os

from highway_study.config import ConfigError
from highway_study.nn import native_stack

log = logging.getLogger("highway_study")
STACK_ENV = "HIGHWAY_STUDY_STACK"
CHOICES = ("auto", "native", "xla")
NATIVE_FROM_DEPTH = 500  # shallower populations measured as fast or faster with XLA


def requested() -> str:
    """$HIGHWAY_STUDY_STACK, checked ("auto" when unset)."""
    value = os.environ.get(STACK_ENV, "auto").strip().lower() or "auto"
    if value not in CHOICES:
        raise ConfigError(f"{STACK_ENV}={os.environ[STACK_ENV]!r} is not allowed: use one of "
                          f"{', '.join(CHOICES)}.")
    return value


def choose_stack(activation, depth: int, wanted: str | None = None) -> str:
    """"native" or "xla" for a population of this activation and depth."""
    wanted = wanted or requested()
    if wanted == "xla" or (wanted == "auto" and depth < NATIVE_FROM_DEPTH):
        return "xla"
    why_not = native_stack.available(activation)
    if why_not is None:
        return "native"
    if wanted == "native":
        raise ConfigError(f"{STACK_ENV}=native cannot be used here: {why_not}")
    log.info("highway layers by XLA: the compiled kernel is not available (%s)", why_not)
    return "xla"
