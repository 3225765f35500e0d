"""Convolutional highway networks: the layer against a SciPy reference, the conv models,
their config checks, and a run through the CLI on synthetic images."""

import json

import keras
import numpy as np
import pytest
from scipy.signal import correlate2d

from compose import compose_config
from highway_study.config import ConfigError, validate
from highway_study.nn.conv import HighwayConv2D
from highway_study.models.lesion import lesion_accuracies
from keras_oracle import evaluate
from highway_study.models import build_model, count_params, gate_activity

RNG = np.random.default_rng(7)


def reference_conv(x, kernel, bias):
    """SAME-padded cross-correlation, channels last, written with SciPy only."""
    batch, height, width, _ = x.shape
    out = np.zeros((batch, height, width, kernel.shape[-1]))
    for b in range(batch):
        for o in range(kernel.shape[-1]):
            for c in range(kernel.shape[-2]):
                out[b, :, :, o] += correlate2d(x[b, :, :, c], kernel[:, :, c, o], mode="same")
            out[b, :, :, o] += bias[o]
    return out


def reference_highway(x, kh, bh, kt, bt):
    """(y, H, T) of a conv highway layer with ReLU H, in NumPy."""
    h = np.maximum(reference_conv(x, kh, bh), 0.0)
    t = 1.0 / (1.0 + np.exp(-reference_conv(x, kt, bt)))
    return h * t + x * (1.0 - t), h, t


def layer_with_weights(kernel_size=3, channels=3, carry_bias=-2.0):
    """A built HighwayConv2D and its (fixed, random) weights kh, bh, kt, bt."""
    layer = HighwayConv2D(kernel_size, carry_bias=carry_bias)
    layer.build((None, 6, 5, channels))
    shape = (kernel_size, kernel_size, channels, channels)
    kh, kt = RNG.normal(0, 0.5, shape), RNG.normal(0, 0.5, shape)
    bh, bt = RNG.normal(0, 0.1, channels), carry_bias + RNG.normal(0, 0.1, channels)
    for variable, value in zip((layer.kernel_h, layer.bias_h, layer.kernel_t, layer.bias_t),
                               (kh, bh, kt, bt)):
        variable.assign(value.astype("float32"))
    return layer, (kh, bh, kt, bt)


def images(batch=2, height=6, width=5, channels=3):
    return RNG.uniform(0, 1, (batch, height, width, channels)).astype("float32")


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_layer_matches_scipy_reference(kernel_size):
    layer, weights = layer_with_weights(kernel_size)
    x = images()
    expected, _, t = reference_highway(x.astype("float64"), *weights)
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.gate_activity(x), [t.mean()], rtol=1e-4)


def test_shape_is_preserved_across_depth():
    x = images(batch=3, height=7, width=9, channels=4)
    h = x
    for _ in range(5):
        h = HighwayConv2D(3)(h)
    assert h.shape == x.shape


def test_carry_bias_limits():
    x = images()
    carry, _ = layer_with_weights(carry_bias=-20.0)
    np.testing.assert_allclose(np.asarray(carry(x)), x, atol=1e-6)
    transform, weights = layer_with_weights(carry_bias=20.0)
    _, h, _ = reference_highway(x.astype("float64"), *weights)
    np.testing.assert_allclose(np.asarray(transform(x)), h, rtol=1e-4, atol=1e-5)


def test_carry_bias_sits_on_the_transform_gate_only():
    layer = HighwayConv2D(3, carry_bias=-3.0, bias_initializer="zeros")
    layer.build((None, 4, 4, 2))
    np.testing.assert_array_equal(layer.get_transform_bias(0), [-3.0, -3.0])
    np.testing.assert_array_equal(layer.bias_h.numpy(), [0.0, 0.0])
    layer.set_transform_bias(0, 1.5)
    np.testing.assert_array_equal(layer.bias_t.numpy(), [1.5, 1.5])
    with pytest.raises(IndexError):
        layer.get_transform_bias(1)


def test_model_with_conv_layer_survives_save_and_load(tmp_path):
    model = keras.Sequential([keras.Input((6, 5, 3)), HighwayConv2D(5, carry_bias=-1.0),
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    x = images()
    path = tmp_path / "conv.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    layer = loaded.layers[0]
    assert isinstance(layer, HighwayConv2D)
    assert (layer.kernel_size, layer.carry_bias) == (5, -1.0)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-6)


# -- models --------------------------------------------------------------------------------

def conv_cfg(*overrides):
    cfg = compose_config(*overrides)
    validate(cfg)
    return cfg


def test_plain_conv_parameter_count():
    cfg = conv_cfg("model=plain_conv", "depth=3", "width=6", "model.readout=global_average")
    model = build_model(cfg, 64, 10, image_shape=(8, 8, 1))
    k, w = 3, 6
    first = k * k * 1 * w + w
    plain = k * k * w * w + w
    classifier = w * 10 + 10
    assert count_params(model) == first + 3 * plain + classifier


def test_highway_conv_parameter_count_with_pooling_and_flatten():
    cfg = conv_cfg("model=highway_conv", "depth=4", "width=5", "model.kernel_size=3",
                   "model.pool_after=[0,2]", "model.readout=flatten", "model.dropout=0.2")
    model = build_model(cfg, 64, 10, image_shape=(8, 8, 1))
    k, w = 3, 5
    highway = 2 * (k * k * w * w + w)
    flat = (8 // 4) * (8 // 4) * w  # two 2x2 poolings
    assert count_params(model) == (k * k * w + w) + 4 * highway + (flat * 10 + 10)
    assert model.output_shape == (None, 10)


def test_gate_activity_and_lesioning_walk_through_pooling_and_dropout():
    cfg = conv_cfg("model=highway_conv", "depth=3", "width=4", "carry_bias=-20",
                   "model.pool_after=[1]", "model.dropout=0.5")
    model = build_model(cfg, 64, 3, image_shape=(8, 8, 1))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                           keras.metrics.SparseCategoricalCrossentropy(
                               from_logits=True, name="xent")])
    x = RNG.uniform(0, 1, (16, 64)).astype("float32")
    y = RNG.integers(0, 3, 16).astype("int32")
    activity = gate_activity(model, x)
    assert len(activity) == 3
    assert all(0.0 <= value < 1e-8 for value in activity)  # sigmoid(-20)
    before = [layer.get_transform_bias(0).copy() for layer in model.layers
              if isinstance(layer, HighwayConv2D)]
    lesion = lesion_accuracies(model, lambda m: evaluate(m, x, y)[1], every=1)
    assert [row["layer"] for row in lesion] == [0, 1, 2]
    after = [layer.get_transform_bias(0) for layer in model.layers
             if isinstance(layer, HighwayConv2D)]
    for b, a in zip(before, after):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("width, paper_params", [(16, 39_000), (32, 151_000)])
def test_paper_experiment_matches_the_papers_parameter_counts(width, paper_params):
    cfg = conv_cfg("experiment=conv_paper_mnist", f"width={width}")
    model = build_model(cfg, 784, 10, image_shape=(28, 28, 1))
    conv_layers = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    highway_layers = [layer for layer in model.layers if isinstance(layer, HighwayConv2D)]
    assert len(conv_layers) + len(highway_layers) == 9  # "9 convolutional layers + softmax"
    assert abs(count_params(model) - paper_params) / paper_params < 0.01


@pytest.mark.parametrize("overrides, words", [
    (["model=highway_conv", "depth=3", "model.pool_after=[3]"], "model.pool_after"),
    (["model=highway_conv", "model.dropout=1.0"], "model.dropout=1.0"),
    (["model=highway_conv", "model.readout=mean"], "model.readout='mean'"),
    (["model=highway_conv", "data=synthetic"], "data.num_features=32"),
    (["model=highway_fc", "model.pool_after=[0]"], "model.pool_after=[0]"),
])
def test_bad_conv_configs_are_rejected_in_one_sentence(overrides, words):
    with pytest.raises(ConfigError, match=r"^[^\n]*\.$") as error:
        validate(compose_config(*overrides))
    assert words in str(error.value)


def test_data_without_images_or_pooled_to_nothing_is_a_config_error():
    cfg = conv_cfg("model=highway_conv", "depth=4", "model.pool_after=[0,1,2,3]")
    with pytest.raises(ConfigError, match="at most 3 pooling positions"):
        build_model(cfg, 64, 10, image_shape=(8, 8, 1))
    with pytest.raises(ConfigError, match="no image shape"):
        build_model(conv_cfg("model=highway_conv"), 30, 10, image_shape=None)


# -- end to end ----------------------------------------------------------------------------

@pytest.mark.slow
def test_conv_run_through_the_cli_writes_the_run_record(run_cli, tmp_path):
    result = run_cli("model=highway_conv", "data=synthetic", "data.num_features=64", "depth=2",
                     "width=4", "epochs=1", "lesion_every=1", "model.pool_after=[0]",
                     "model.dropout=0.1", "tensorboard=false", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and len(rows[0]["gate_activity"]) == 2
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["config"]["model"]["name"] == "highway_conv"
    assert len(summary["gate_activity"]) == 2
    assert [row["layer"] for row in summary["lesion"]] == [0, 1]
    assert 0.0 <= summary["test_accuracy"] <= 1.0


def test_conv_model_on_data_pooled_to_nothing_fails_in_one_sentence(tmp_path, capsys):
    from highway_study.runtime.job import run_job

    cfg = conv_cfg("model=highway_conv", "data=digits", "depth=4", "width=2",
                   "model.pool_after=[0,1,2,3]", "tensorboard=false")
    with pytest.raises(SystemExit) as stop:
        run_job(cfg, tmp_path, multirun=False)
    assert stop.value.code == 1
    message = capsys.readouterr().err.strip()
    assert "model.pool_after=[0, 1, 2, 3]" in message and "\n" not in message
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == message
