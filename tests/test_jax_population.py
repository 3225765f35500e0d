"""The JAX restatement of the population (highway_study.bench.jax_population), measured on
the lent GPU: its TensorFlow reference, its initialisation and the protocol's arithmetic
here; its agreement with the TensorFlow stack where JAX is installed (not a dependency)."""

from __future__ import annotations

import numpy as np
import pytest

from highway_study.bench import jax_population as jp


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("jax") / "ref.npz"
    jp.reference(str(path), depth=4, members=2)
    return path


def test_reference_holds_the_stack_and_its_gradients(reference):
    ref = np.load(reference)
    assert ref["kernel"].shape == (4, 2, jp.WIDTH, 2 * jp.WIDTH)
    assert ref["bias"].shape == (4, 2, 1, 2 * jp.WIDTH)
    for name in ("x", "y", "dx", "dy"):
        assert ref[name].shape == (2, jp.BATCH, jp.WIDTH), name
    assert ref["dkernel"].shape == ref["kernel"].shape and ref["dbias"].shape == ref["bias"].shape
    assert np.all(np.isfinite(ref["dkernel"])) and np.abs(ref["dkernel"]).max() > 0


def test_reference_is_the_stack_written_out_by_hand(reference):
    """One layer after another in NumPy: y = relu(H) * T + x * (1 - T)."""
    ref = np.load(reference)
    y = ref["x"].astype(np.float64)
    for kernel, bias in zip(ref["kernel"], ref["bias"]):
        pre = np.einsum("mbi,mio->mbo", y, kernel) + bias
        h, t = np.maximum(pre[..., :jp.WIDTH], 0), 1 / (1 + np.exp(-pre[..., jp.WIDTH:]))
        y = h * t + y * (1 - t)
    np.testing.assert_allclose(ref["y"], y, rtol=1e-4, atol=1e-5)


def test_the_jax_stack_equals_the_tensorflow_one(reference):
    pytest.importorskip("jax")
    errors = jp.check(str(reference))
    assert set(errors) == {"y", "dx", "dkernel", "dbias"} and max(errors.values()) < 1e-5


def test_init_is_the_blogs_with_the_carry_bias_on_the_gate():
    params = jp.init(depth=3, members=2, carry_bias=-5.0)
    assert params["kernel"].shape == (3, 2, jp.WIDTH, 2 * jp.WIDTH)
    assert np.all(params["bias"][..., :jp.WIDTH] == np.float32(0.1))
    assert np.all(params["bias"][..., jp.WIDTH:] == -5.0)
    assert 0.08 < params["w_in"].std() < 0.12
    assert not np.allclose(params["kernel"][:, 0], params["kernel"][:, 1])  # own draws


def test_protocol_minutes_add_up_every_depth():
    rows = [{"depth": 1, "members": 1, "member_steps_per_s": 1050.0},
            {"depth": 1000, "members": 1, "member_steps_per_s": 10.5},
            {"depth": 1, "members": 21, "member_steps_per_s": 21000.0}]
    minutes = jp.protocol_minutes(rows)
    # 21 runs x 5000 steps = 105,000 member-steps per depth
    assert minutes[1] == pytest.approx(105000 / 1050 / 60 + 105000 / 10.5 / 60)
    assert minutes[21] == pytest.approx(105000 / 21000 / 60)
