"""Config composition, defaults, and one-sentence errors for every bad value."""

import pytest

from compose import compose_config
from highway_study.config import ConfigError, validate


def test_defaults_follow_the_blog_fully_connected_setup():
    cfg = compose_config()
    assert (cfg.model.name, cfg.depth, cfg.width, cfg.carry_bias) == ("highway_fc", 18, 50, -2.0)
    assert cfg.model.activation == "relu" and cfg.data.name == "digits"
    validate(cfg)


def test_int_carry_bias_is_accepted_as_float():
    cfg = compose_config("carry_bias=-1", "depth=18")
    assert isinstance(cfg.carry_bias, float) and cfg.carry_bias == -1.0


def test_default_optimizer_is_momentum_with_a_cosine_decay_chosen_by_measurement():
    # docs/convergence.md: at the blog's 5,000 steps of 50 it beats setup=blog on MNIST.
    optimizer = compose_config().optimizer
    assert (optimizer.name, optimizer.learning_rate, optimizer.momentum,
            optimizer.schedule) == ("momentum", 0.05, 0.9, "cosine")
    assert compose_config("optimizer=sgd").optimizer.schedule == "constant"


def test_step_resolution_defaults():
    assert (compose_config("data=mnist").eval_every, compose_config().eval_every) == (100, 20)
    assert compose_config().eval_examples == 1000


def test_blog_setup_preset():
    cfg = compose_config("setup=blog")
    assert cfg.optimizer.name == "sgd" and cfg.optimizer.learning_rate == 0.01
    assert cfg.optimizer.schedule == "constant" and cfg.optimizer.momentum == 0.0
    assert (cfg.loss_reduction, cfg.batch_size, cfg.max_steps) == ("sum", 50, 5000)
    assert (cfg.model.kernel_initializer, cfg.model.init_stddev, cfg.model.bias_init) == (
        "truncated_normal", 0.1, 0.1)


def test_command_line_beats_model_defaults():
    assert compose_config("model=plain_fc", "width=30").width == 30


@pytest.mark.parametrize("override, key, allowed", [
    ("depth=0", "depth=0", ">= 1"),
    ("width=-3", "width=-3", ">= 1"),
    ("epochs=0", "epochs=0", ">= 1"),
    ("batch_size=0", "batch_size=0", ">= 1"),
    ("optimizer.learning_rate=0", "optimizer.learning_rate=0.0", "> 0"),
    ("optimizer.learning_rate=-0.1", "optimizer.learning_rate=-0.1", "> 0"),
    ("optimizer.momentum=1.5", "optimizer.momentum=1.5", "[0, 1)"),
    ("model.name=resnet", "model.name='resnet'", "highway_fc"),
    ("loss_reduction=median", "loss_reduction='median'", "mean, sum"),
    ("model.kernel_initializer=zeros", "model.kernel_initializer='zeros'", "glorot_uniform"),
    ("carry_bias=nan", "carry_bias=nan", "finite"),
    ("threshold=1.5", "threshold=1.5", "(0, 1]"),
    ("max_steps=0", "max_steps=0", ">= 1"),
    ("patience=0", "patience=0", ">= 1"),
    ("model.streams=0", "model.streams=0", ">= 1"),
    ("eval_every=-1", "eval_every=-1", ">= 0"),
    ("eval_examples=0", "eval_examples=0", ">= 1"),
    ("optimizer.schedule=step", "optimizer.schedule='step'", "constant, cosine"),
])
def test_bad_values_raise_one_sentence_naming_key_value_and_range(override, key, allowed):
    with pytest.raises(ConfigError) as error:
        validate(compose_config(override))
    message = str(error.value)
    assert message.startswith(key) and allowed in message and message.count("\n") == 0


@pytest.mark.parametrize("model, depth, allowed", [("shallow", 5, 1), ("softmax", 2, 0)])
def test_fixed_depth_models_reject_other_depths(model, depth, allowed):
    message = f"depth={depth} is not allowed for model={model}, which has"
    with pytest.raises(ConfigError, match=message) as error:
        validate(compose_config(f"model={model}", f"depth={depth}"))
    assert f"use depth={allowed}" in str(error.value)


def test_cli_bad_value_exits_nonzero_with_one_sentence(run_cli, tmp_path):
    result = run_cli("depth=0", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert "Invalid config: depth=0 is not allowed: use an integer >= 1." in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_unknown_group_option_lists_the_allowed_ones(run_cli, tmp_path):
    result = run_cli("model=resnet", f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "highway_fc" in result.stderr and "plain_fc" in result.stderr


def test_bad_thread_count_in_environment_is_one_sentence(run_cli, tmp_path):
    result = run_cli("data=synthetic", f"hydra.run.dir={tmp_path}",
                     env={"HIGHWAY_STUDY_THREADS": "two"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "HIGHWAY_STUDY_THREADS='two' is not allowed: use an integer >= 1." in result.stderr
