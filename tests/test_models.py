"""Model structure: parameter counts from formulas, gate records, lesioning."""

import keras
import numpy as np
import pytest

from compose import compose_config
from highway_study.models.lesion import lesion_accuracies
from keras_oracle import evaluate
from highway_study.models import build_model, count_params, gate_activity

IN, CLASSES = 64, 10


def projection_and_classifier(width):
    return (IN * width + width) + (width * CLASSES + CLASSES)


@pytest.mark.parametrize("implementation", ["scan", "layers"])
def test_highway_fc_parameter_count(implementation):
    cfg = compose_config("depth=7", "width=12", f"model.implementation={implementation}")
    model = build_model(cfg, IN, CLASSES)
    per_layer = 2 * (12 * 12 + 12)  # H and T: kernel + bias each
    assert count_params(model) == projection_and_classifier(12) + 7 * per_layer


def test_plain_fc_parameter_count_and_default_width():
    cfg = compose_config("model=plain_fc", "depth=4")
    assert cfg.width == 71
    model = build_model(cfg, IN, CLASSES)
    assert count_params(model) == projection_and_classifier(71) + 4 * (71 * 71 + 71)


def test_plain_width_71_matches_highway_width_50_per_layer():
    assert abs((71 * 71 + 71) - 2 * (50 * 50 + 50)) / (2 * (50 * 50 + 50)) < 0.01


def test_shallow_parameter_count():
    cfg = compose_config("model=shallow", "width=20")
    assert count_params(build_model(cfg, IN, CLASSES)) == projection_and_classifier(20)


@pytest.mark.parametrize("implementation", ["scan", "layers"])
def test_gate_activity_has_one_value_per_highway_layer(implementation):
    cfg = compose_config("depth=5", "width=8", "carry_bias=-3",
                         f"model.implementation={implementation}")
    model = build_model(cfg, IN, CLASSES)
    activity = gate_activity(model, np.random.default_rng(0).random((16, IN), np.float32))
    assert len(activity) == 5
    # Gate pre-activations are x W_T - 3 with small Glorot weights: T stays well below 0.5.
    assert all(0.0 < value < 0.3 for value in activity)


def test_plain_models_have_no_gates():
    model = build_model(compose_config("model=plain_fc", "depth=3"), IN, CLASSES)
    assert gate_activity(model, np.zeros((2, IN), np.float32)) == []


def test_lesioning_restores_biases_and_reports_every_kth_layer():
    cfg = compose_config("depth=6", "width=8")
    model = build_model(cfg, IN, CLASSES)
    # compiled as in training: evaluate() reads the "xent" and "accuracy" metrics
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                           keras.metrics.SparseCategoricalCrossentropy(from_logits=True,
                                                                       name="xent")])
    before = [w.copy() for w in model.get_weights()]
    rng = np.random.default_rng(0)
    x, y = rng.random((32, IN), np.float32), rng.integers(0, 10, 32)
    result = lesion_accuracies(model, lambda m: evaluate(m, x, y)[1], every=2)
    assert [row["layer"] for row in result] == [0, 2, 4]
    assert all(0.0 <= row["val_accuracy"] <= 1.0 for row in result)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_softmax_regression_has_no_hidden_layer():
    cfg = compose_config("model=softmax")
    assert cfg.depth == 0
    assert count_params(build_model(cfg, IN, CLASSES)) == IN * CLASSES + CLASSES


def test_spread_kinks_put_each_first_layer_kink_at_its_own_point_of_the_input_range():
    def first_layer(seed, kinks):
        keras.utils.set_random_seed(seed)
        cfg = compose_config("model=shallow", "width=200", f"model.kinks={kinks}")
        kernel, bias = build_model(cfg, 1, 2).get_layer("input_projection").get_weights()
        return kernel[0], bias

    kernel, bias = first_layer(0, "spread")
    kinks = -bias / kernel
    assert (np.abs(kinks) <= 1.0 + 1e-5).all() and kinks.std() > 0.45  # U[-1, 1]: sd 0.58
    np.testing.assert_array_equal(first_layer(0, "spread")[1], bias)  # repeatable by seed
    assert not np.array_equal(first_layer(1, "spread")[1], bias)
    assert (first_layer(0, "bias_init")[1] == 0.0).all()  # every kink at x = 0


@pytest.mark.parametrize("override, message", [
    (("model=softmax", "model.kinks=spread"), "model.kinks=spread is not allowed for model=softmax"),
    (("model=highway_fc", "model.kinks=even"), "model.kinks='even' is not allowed"),
    (("model=residual_fc", "model.branch_scale=0"), "model.branch_scale=0.0 is not allowed"),
])
def test_bad_kink_and_branch_settings_end_in_one_sentence(override, message):
    from highway_study.config import ConfigError, validate
    with pytest.raises(ConfigError, match=message) as error:
        validate(compose_config(*override))
    assert "\n" not in str(error.value)
