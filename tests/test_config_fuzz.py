"""A fuzzer for the command line: whatever overrides a user types, the app refuses them in
one sentence naming the value, or the config is valid and trains.

Hypothesis draws overrides of the keys users set (numbers out of range, wrong types, NaN,
empty strings, unknown names); composing and validating each must either pass or end in
`describe()`'s or `validate()`'s one sentence. A sample of the valid ones then trains a
few steps through the engine. Failures it finds are kept as regular tests in
tests/test_config.py.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compose import compose_config
from highway_study.config import ConfigError, validate
from highway_study.runtime.errors import describe

NUMBERS = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from(["abc", "", "null", "1e309", "-0", "0x10", "[1,2]"]))
KEYS = {
    "depth": NUMBERS, "carry_bias": NUMBERS, "width": NUMBERS, "batch_size": NUMBERS,
    "epochs": NUMBERS, "max_steps": NUMBERS, "seed": NUMBERS, "threshold": NUMBERS,
    "eval_every": NUMBERS, "eval_examples": NUMBERS, "patience": NUMBERS,
    "lesion_every": NUMBERS, "optimizer.learning_rate": NUMBERS,
    "optimizer.momentum": NUMBERS, "model.init_stddev": NUMBERS, "model.streams": NUMBERS,
    "model.implementation": st.sampled_from(["scan", "scan_xla", "layers", "fast", "", "1"]),
    "model.activation": st.sampled_from(["relu", "tanh", "nope", "", "2"]),
    "optimizer.schedule": st.sampled_from(["constant", "cosine", "step", ""]),
    "loss_reduction": st.sampled_from(["mean", "sum", "max", ""]),
    "model": st.sampled_from(["highway_fc", "plain_fc", "shallow", "softmax", "resnet"]),
    "optimizer": st.sampled_from(["sgd", "momentum", "adam", "rmsprop"]),
}


def text(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


overrides = st.dictionaries(st.sampled_from(sorted(KEYS)), st.just(None), max_size=4).flatmap(
    lambda keys: st.fixed_dictionaries({key: KEYS[key] for key in keys}))


def outcome(chosen: dict):
    """None when the config is valid, else the one sentence the user sees."""
    args = ["data=synthetic", *[f"{key}={text(value)}" for key, value in chosen.items()]]
    try:
        cfg = compose_config(*args)
        validate(cfg)
    except ConfigError as error:
        return f"Invalid config: {error}", None
    except Exception as error:  # noqa: BLE001 - Hydra's own: describe() must name it
        said = describe(error)
        assert said is not None, f"{args}: {type(error).__name__}: {error}"
        return said, None
    return None, cfg


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(overrides)
def test_any_override_is_refused_in_one_sentence_or_valid(chosen):
    said, cfg = outcome(chosen)
    if said is None:
        return
    assert "\n" not in said and said.startswith("Invalid config: ")
    assert len(said) < 400
    named = [key.split(".")[-1] for key in chosen]
    assert any(key in said for key in named) or "override" in said, (chosen, said)


@pytest.mark.slow
@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({
    "depth": st.integers(0, 3), "carry_bias": st.floats(-20, 5),
    "width": st.integers(1, 9), "batch_size": st.integers(1, 300),
    "optimizer.learning_rate": st.floats(1e-6, 1e3),
    "model": st.sampled_from(["highway_fc", "plain_fc", "residual_fc", "softmax"])}))
def test_a_valid_config_trains_or_diverges_never_a_traceback(tmp_path_factory, chosen):
    from highway_study.training import train

    chosen = dict(chosen, max_steps=3, eval_every=2, tensorboard="false")
    said, cfg = outcome(chosen)
    if said is not None:
        return  # refused in one sentence (a depth the model does not allow, say)
    summary = train(cfg, tmp_path_factory.mktemp("run"), verbose=False)
    assert summary.status in ("completed", "diverged")
    assert summary.engine["kernel"] in ("xla", "vectorized", "keras", "native")
