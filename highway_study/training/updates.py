"""The optimizer arithmetic of the engine: Keras's SGD, momentum and Adam, with a learning
rate per member.

One `Updates` holds the optimizer state of a list of variables that carry one or several
members: a variable's member axis (None: the variable is one member's) says which slice is
whose, so the same arithmetic steps a population's stacked weights and a run alone's Keras
variables. The arithmetic is keras.optimizers' own, in its order of operations (the tests
compare a trained member with Keras `fit` for every optimizer); a member whose step is off
(its loss was not finite, or it stopped) keeps its weights and its optimizer state.
"""

from __future__ import annotations

import inspect

import keras
import numpy as np
import tensorflow as tf

from highway_study.training.optim import learning_rate

OPTIMIZERS = ("sgd", "momentum", "adam")
SLOTS = {"sgd": (), "momentum": ("m",), "adam": ("m", "v")}
# Keras's own Adam defaults (a config names only the learning rate), so that a member's
# step is the step keras.optimizers.Adam takes.
_ADAM_DEFAULTS = inspect.signature(keras.optimizers.Adam).parameters
ADAM_BETA_1 = _ADAM_DEFAULTS["beta_1"].default
ADAM_BETA_2 = _ADAM_DEFAULTS["beta_2"].default
ADAM_EPSILON = _ADAM_DEFAULTS["epsilon"].default


@tf.function(jit_compile=True)
def _sgd_update(var, grad, lr):
    """var -= lr * grad in one pass over the weight (fused by XLA). multiply_no_nan: a member
    with a zero rate moves by exactly 0, even on a NaN gradient."""
    var.assign_sub(tf.math.multiply_no_nan(grad, lr))


@tf.function(jit_compile=True)
def _momentum_update(var, accum, grad, lr, momentum, gate):
    """Keras's SGD with momentum (accum = accum * momentum - lr * grad; var += accum) for
    every member whose `gate` is on."""
    accum_next = accum * momentum - tf.math.multiply_no_nan(grad, lr)
    accum.assign(tf.where(gate, accum_next, accum))
    var.assign(tf.where(gate, var + accum_next, var))


@tf.function(jit_compile=True)
def _adam_update(var, m, v, grad, alpha, gate):
    """One Adam step for every member whose `gate` is on, fused into few passes over the
    weight (as separate ops, each was a pass over a deep stack's kernel)."""
    grad = tf.where(gate, grad, 0.0)
    m_next = m + (grad - m) * (1 - ADAM_BETA_1)
    v_next = v + (tf.square(grad) - v) * (1 - ADAM_BETA_2)
    move = (m_next * alpha) / (tf.sqrt(v_next) + ADAM_EPSILON)
    m.assign(tf.where(gate, m_next, m))
    v.assign(tf.where(gate, v_next, v))
    var.assign(tf.where(gate, var - move, var))


class Updates:
    """The optimizer state of `variables` and the step that updates them.

    `member_axes[i]` is the axis of variables[i] that runs over the members (None: all of
    variables[i] is one member's, and there is one member). `configs` are the members'
    configs, in member order; they share the optimizer's name and momentum (a population's
    shape) and may differ in the learning rate.
    """

    def __init__(self, variables, member_axes, configs, total_steps: int | None,
                 slots: dict | None = None):
        self.variables = list(variables)
        self.member_axes = list(member_axes)
        self.optimizer = configs[0].optimizer.name
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={self.optimizer} is not one of {', '.join(OPTIMIZERS)}.")
        self.lr = tf.constant([float(c.optimizer.learning_rate) for c in configs], tf.float32)
        # The members' rates as Keras computes them at each step (the same schedule object,
        # given all members' initial rates at once).
        self.schedule = learning_rate(configs[0].optimizer.copy(), total_steps)
        if not isinstance(self.schedule, keras.optimizers.schedules.LearningRateSchedule):
            self.schedule = None
        elif isinstance(self.schedule, keras.optimizers.schedules.CosineDecay):
            self.schedule = keras.optimizers.schedules.CosineDecay(self.lr, total_steps)
        self.momentum = tf.constant(float(configs[0].optimizer.get("momentum") or 0.0),
                                    tf.float32)
        slots = slots or {}
        self.slots = {
            slot: [tf.Variable(np.asarray(slots[slot][i]) if slot in slots
                               else np.zeros(v.shape, np.float32), name=f"{slot}_{i}",
                               trainable=False)
                   for i, v in enumerate(self.variables)]
            for slot in SLOTS[self.optimizer]}

    def rates(self, step) -> tf.Tensor:
        """Every member's learning rate at optimizer step `step` (0-based)."""
        return self.lr if self.schedule is None else self.schedule(step)

    def apply(self, grads, moves, step) -> None:
        """One optimizer step of every member whose `moves` entry is true, at step `step`."""
        rate = self.rates(step)
        if self.optimizer == "adam":
            local_step = tf.cast(step + 1, tf.float32)
            beta_1_power = tf.pow(tf.constant(ADAM_BETA_1, tf.float32), local_step)
            beta_2_power = tf.pow(tf.constant(ADAM_BETA_2, tf.float32), local_step)
            alpha = rate * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
            for i, (var, grad) in enumerate(zip(self.variables, grads)):
                _adam_update(var, self.slots["m"][i], self.slots["v"][i], grad,
                             self._per_member(alpha, i), self._per_member(moves, i))
            return
        lr = tf.where(moves, rate, 0.0)
        for i, (var, grad) in enumerate(zip(self.variables, grads)):
            if self.optimizer == "momentum":
                _momentum_update(var, self.slots["m"][i], grad, self._per_member(lr, i),
                                 self.momentum, self._per_member(moves, i))
            else:
                _sgd_update(var, grad, self._per_member(lr, i))

    def _per_member(self, values, i: int):
        """`values` [members] shaped to broadcast over variables[i]."""
        axis = self.member_axes[i]
        if axis is None:
            return tf.reshape(values, [])
        shape = [1] * len(self.variables[i].shape)
        shape[axis] = -1
        return tf.reshape(values, shape)

    def slot_arrays(self) -> dict:
        """{slot: [array per variable]}: the state a checkpoint keeps."""
        return {slot: [v.numpy() for v in values] for slot, values in self.slots.items()}
