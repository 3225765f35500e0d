"""Structured configs (the schema Hydra merges every YAML file into) and their checks.

Hydra and OmegaConf check types (an int where a float is expected is converted, so
`carry_bias=-1` is -1.0); `validate` checks ranges and names and raises `ConfigError` with
one sentence naming the key, the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from highway_study import catalog, record
from highway_study.data import LOADERS

READOUTS = ("flatten", "global_average")
OPTIMIZER_NAMES = ("sgd", "momentum", "adam")
SCHEDULES = ("constant", "cosine")
LOSS_REDUCTIONS = ("mean", "sum")
IMPLEMENTATIONS = ("scan", "scan_xla", "scan_native", "layers", "scan_autodiff")
# Keras activation names (tests/test_config.py checks that Keras knows each one).
ACTIVATIONS = (
    "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "mish", "tanh",
    "sigmoid", "hard_sigmoid", "softplus", "softsign", "exponential", "linear",
)
SEED_LIMIT = 2**32  # numpy and Keras take seeds in [0, 2**32)
KINKS = ("bias_init", "spread")
INITIALIZERS = (
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
    "lecun_normal", "orthogonal", "truncated_normal", "random_normal",
)


# Models whose first layer is a dense input projection, the layer model.kinks=spread sets:
# every dense model but softmax regression.
SPREAD_KINK_MODELS = tuple(n for n in catalog.names("dense") if catalog.family(n) != "softmax")


class ConfigError(ValueError):
    """A config value outside what the study allows; the message is one sentence."""


@dataclass
class ModelConfig:
    name: str = MISSING
    activation: str = "relu"
    # Any Keras initializer name; "truncated_normal"/"random_normal" use init_stddev.
    kernel_initializer: str = "glorot_uniform"
    init_stddev: float = 0.1
    # Initial value of every bias except the transform gate's (which is carry_bias).
    bias_init: float = 0.0
    # Fully connected models with an input projection: how that first layer's biases start.
    # "bias_init": all equal to bias_init, so with one input feature every ReLU kink sits at
    # the same point; "spread": each unit's kink (w.x + b = 0) passes through its own
    # uniform random point of [-1, 1]^features, so the kinks cover a centred input's range.
    kinks: str = "bias_init"
    # residual_fc only: y = x + branch_scale * H(x); below 1 keeps a deep stack's
    # activations from growing with depth.
    branch_scale: float = 1.0
    # How the members of a run or population are computed (training.stack_choice). Other
    # dense models: "layers" trains one Keras model per member (the reference), any other
    # value one vectorized graph. highway_fc, how its highway layers are computed:
    # "scan" (stacked weights; the compiled kernel for deep stacks where it runs, else XLA),
    # "scan_xla" or "scan_native" (one of the two, always), "layers" (one HighwayDense per
    # layer, the reference) or "scan_autodiff" (stacked weights, TensorFlow's own scan and
    # gradient). Which one ran is written into summary.json (`engine`).
    implementation: str = "scan"
    # implementation=scan only: cut each batch into this many slices, run side by side (one
    # XLA loop keeps one core busy; measured in docs/benchmark.md).
    # null: 2 where TensorFlow has two or more inter-op threads, else 1.
    streams: Optional[int] = None
    # Conv models only (highway_conv, plain_conv; `width` is their number of channels):
    # side of the square convolution kernels,
    kernel_size: int = 3
    # hidden layers (0-based, < depth) followed by 2x2 max-pooling,
    pool_after: List[int] = field(default_factory=list)
    # dropout rate after every pooling layer and before the classifier (0 = none),
    dropout: float = 0.0
    # and how the last feature maps reach the classifier: "flatten" or "global_average".
    readout: str = "global_average"


@dataclass
class DataConfig:
    name: str = MISSING
    # mnist: an explicit folder holding the four IDX files (.gz or raw); else searched.
    path: Optional[str] = None
    # mnist: download into the cache when the files are found nowhere.
    download: bool = True
    # Examples held out of the training set for validation (seeded).
    val_size: int = 5000
    # digits/synthetic only: examples held out as the test set.
    test_size: int = 0
    # Use only the first N training examples (after the validation split); null = all.
    train_limit: Optional[int] = None
    # synthetic and tent: examples and features generated; synthetic: classes.
    num_examples: int = 0
    num_features: int = 0
    num_classes: int = 10
    # tent only: times the tent map is composed (2^(k-1) teeth), share of labels flipped,
    # and the seed of the generated examples (the same task for every run seed).
    k: int = 8
    noise: float = 0.0
    generator_seed: int = 0
    # tent only: inputs centred in [-1, 1] (true) or in [0, 1] (false, the first edition's).
    centred: bool = False


@dataclass
class OptimizerConfig:
    name: str = MISSING
    learning_rate: float = 0.01
    momentum: float = 0.0
    # "constant", or "cosine": decay from learning_rate to 0 over the run's optimizer steps.
    schedule: str = "constant"


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    # Number of highway (or plain hidden) layers between the input projection and the
    # classifier.
    depth: int = 18
    # Initial bias b_T of every transform gate.
    carry_bias: float = -2.0
    width: int = 50
    epochs: int = 5
    # Stop after this many optimizer steps (overrides epochs when set); null = epochs only.
    max_steps: Optional[int] = None
    batch_size: int = 128
    # "mean" averages the cross-entropy over a batch, "sum" adds it up (the blog's).
    loss_reduction: str = "mean"
    seed: int = 0
    # Validation accuracy that counts as "converged" (epochs_to_threshold).
    threshold: float = 0.9
    tensorboard: bool = True
    # After training, evaluate with every k-th layer's transform gate forced shut; 0 = off.
    lesion_every: int = 0
    # Stop when validation accuracy has not improved for this many epochs; null = never.
    patience: Optional[int] = None
    # Record a point of the step-resolution curve (curve.jsonl) every this many optimizer
    # steps; 0 = no curve. 100 gives 50 points over the blog's 5,000 steps (docs/convergence.md).
    eval_every: int = 100
    # Validation examples measured at each point (the first N of the validation set, the
    # same at every point); null = all of them. Best/final validation and test accuracy
    # always use the full sets.
    eval_examples: Optional[int] = 1000
    # What a sweep (grid or Optuna) maximises: one of record.OBJECTIVES, or a list of them
    # (a multi-objective Optuna search; the task then returns one value per name, in order).
    # 0 for runs that did not complete.
    optimized_metric: Any = "best_val_accuracy"
    # Free-form tags copied into the run record (for example the experiment's name).
    tags: Any = field(default_factory=dict)


def register_configs() -> None:
    """Register the schema that conf/config.yaml starts from."""
    ConfigStore.instance().store(name="base_config", node=Config)


def known_keys(schema=Config, prefix: str = "") -> list[str]:
    """Every key the schema defines, dotted (`model.activation`); `tags` is free-form."""
    keys = []
    for item in dataclasses.fields(schema):
        keys.append(prefix + item.name)
        if dataclasses.is_dataclass(item.type) or (
                isinstance(item.type, str) and item.type in _SECTIONS):
            keys += known_keys(_SECTIONS.get(item.type, item.type), f"{prefix}{item.name}.")
    return keys


def validate(cfg) -> None:
    """Raise ConfigError for the first value outside its allowed range."""
    _no_unknown_keys(cfg)
    _choice("model.name", cfg.model.name, catalog.names())
    _choice("data.name", cfg.data.name, tuple(LOADERS))
    try:
        record.metric_names(cfg.optimized_metric)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    _choice("optimizer.name", cfg.optimizer.name, OPTIMIZER_NAMES)
    _choice("optimizer.schedule", cfg.optimizer.schedule, SCHEDULES)
    _choice("loss_reduction", cfg.loss_reduction, LOSS_REDUCTIONS)
    _choice("model.implementation", cfg.model.implementation, IMPLEMENTATIONS)
    _choice("model.kernel_initializer", cfg.model.kernel_initializer, INITIALIZERS)
    _choice("model.activation", cfg.model.activation, ACTIVATIONS)
    _choice("model.kinks", cfg.model.kinks, KINKS)
    if cfg.model.kinks == "spread" and cfg.model.name not in SPREAD_KINK_MODELS:
        raise ConfigError(f"model.kinks=spread is not allowed for model={cfg.model.name}: "
                          f"use it with {', '.join(SPREAD_KINK_MODELS)}.")
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or not (
            0 <= cfg.seed < SEED_LIMIT):
        raise ConfigError(
            f"seed={cfg.seed!r} is not allowed: use an integer from 0 to {SEED_LIMIT - 1}.")
    for key in ("width", "epochs", "batch_size"):
        _at_least(key, cfg[key], 1)
    if cfg.model.streams is not None:
        _at_least("model.streams", cfg.model.streams, 1)
    fixed = catalog.spec(cfg.model.name).fixed_depth
    if fixed is not None:
        depth, structure = fixed
        if cfg.depth != depth:
            raise ConfigError(
                f"depth={cfg.depth} is not allowed for model={cfg.model.name}, which has "
                f"{structure}: use depth={depth} or another model."
            )
    else:
        _at_least("depth", cfg.depth, 1)
    if cfg.max_steps is not None:
        _at_least("max_steps", cfg.max_steps, 1)
    _at_least("lesion_every", cfg.lesion_every, 0)
    if cfg.patience is not None:
        _at_least("patience", cfg.patience, 1)
    _at_least("eval_every", cfg.eval_every, 0)
    if cfg.eval_examples is not None:
        _at_least("eval_examples", cfg.eval_examples, 1)
    _finite("carry_bias", cfg.carry_bias)
    _positive("optimizer.learning_rate", cfg.optimizer.learning_rate)
    _positive("model.init_stddev", cfg.model.init_stddev)
    _finite("model.bias_init", cfg.model.bias_init)
    _positive("model.branch_scale", cfg.model.branch_scale)
    if not 0.0 <= cfg.optimizer.momentum < 1.0:
        raise ConfigError(
            f"optimizer.momentum={cfg.optimizer.momentum} is not allowed: use a value in [0, 1)."
        )
    if cfg.optimizer.momentum and cfg.optimizer.name != "momentum":
        raise ConfigError(
            f"optimizer.momentum={cfg.optimizer.momentum} is not used by "
            f"optimizer={cfg.optimizer.name}: leave it at 0 or use optimizer=momentum."
        )
    if not 0.0 < cfg.threshold <= 1.0:
        raise ConfigError(f"threshold={cfg.threshold} is not allowed: use a value in (0, 1].")
    _validate_conv(cfg)
    _validate_data(cfg.data)


def _validate_conv(cfg) -> None:
    mcfg = cfg.model
    conv_models = catalog.names("conv")
    if mcfg.name not in conv_models:
        if mcfg.pool_after or mcfg.dropout:
            raise ConfigError(
                f"model.pool_after={list(mcfg.pool_after)} and model.dropout={mcfg.dropout} "
                f"are not used by model={mcfg.name}: leave them at [] and 0 or use "
                f"model={' or model='.join(conv_models)}."
            )
        return
    _choice("model.readout", mcfg.readout, READOUTS)
    _at_least("model.kernel_size", mcfg.kernel_size, 1)
    for index in mcfg.pool_after:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < cfg.depth:
            raise ConfigError(
                f"model.pool_after={list(mcfg.pool_after)} holds {index!r}: use hidden-layer "
                f"indices from 0 to depth-1={cfg.depth - 1}."
            )
    if not 0.0 <= mcfg.dropout < 1.0:
        raise ConfigError(f"model.dropout={mcfg.dropout} is not allowed: use a value in [0, 1).")
    data = cfg.data
    if data.name == "synthetic" and round(math.sqrt(data.num_features)) ** 2 != data.num_features:
        raise ConfigError(
            f"data.num_features={data.num_features} is not a square number, so data=synthetic "
            f"has no image shape for model={mcfg.name}: use for example data.num_features=64."
        )


def _validate_data(data) -> None:
    _at_least("data.val_size", data.val_size, 1)
    _at_least("data.test_size", data.test_size, 0 if data.name == "mnist" else 1)
    if data.train_limit is not None:
        _at_least("data.train_limit", data.train_limit, 1)
    if data.name == "tent":
        _at_least("data.k", data.k, 1)
        _at_least("data.generator_seed", data.generator_seed, 0)
        if not 0.0 <= data.noise < 0.5:
            raise ConfigError(f"data.noise={data.noise} is not allowed: use a share of "
                              "flipped labels in [0, 0.5).")
    if data.name in ("synthetic", "tent"):
        _at_least("data.num_examples", data.num_examples, 1)
        _at_least("data.num_features", data.num_features, 1)
        _at_least("data.num_classes", data.num_classes, 2)
        if data.val_size + data.test_size >= data.num_examples:
            raise ConfigError(
                f"data.val_size + data.test_size = {data.val_size + data.test_size} leaves no "
                f"training examples out of data.num_examples={data.num_examples}: make it smaller."
            )


_SECTIONS = {"ModelConfig": ModelConfig, "DataConfig": DataConfig,
             "OptimizerConfig": OptimizerConfig}


def _no_unknown_keys(cfg) -> None:
    """Refuse keys the schema does not define (Hydra's `+key=value` adds any key, so a typo
    such as `+deph=5` would otherwise train with the default depth)."""
    known = set(known_keys())
    for key in _keys(cfg):
        if key not in known:
            raise ConfigError(unknown_key(key))


def unknown_key(key: str) -> str:
    """One sentence saying `key` is not in the schema, with the closest key of its section."""
    section, _, name = key.rpartition(".")
    siblings = [k.rpartition(".")[2] for k in known_keys() if k.rpartition(".")[0] == section]
    close = difflib.get_close_matches(name, sorted(siblings), n=1)
    hint = (f"did you mean {section + '.' if section else ''}{close[0]}?" if close
            else "see highway_study/config.py for the keys.")
    return f"{key} is not a config key of this study: {hint}"


def _keys(cfg, prefix: str = "") -> list[str]:
    keys = []
    for key in cfg:
        keys.append(f"{prefix}{key}")
        value = cfg[key]
        if f"{prefix}{key}" != "tags" and hasattr(value, "keys"):
            keys += _keys(value, f"{prefix}{key}.")
    return keys


def _choice(key: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed: use one of {', '.join(allowed)}.")


def _at_least(key: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{key}={value!r} is not allowed: use an integer >= {low}.")


def _positive(key: str, value) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{key}={value!r} is not allowed: use a number > 0.")


def _finite(key: str, value) -> None:
    if not math.isfinite(value):
        raise ConfigError(f"{key}={value!r} is not allowed: use a finite number.")
