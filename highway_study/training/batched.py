"""A population's weights and optimizer state, stacked on a member axis, and its maths.

`Population` trains, evaluates and probes every member at once; `Group` is one of its
independent parts (TensorFlow runs the parts side by side, one per core). Each member's
numbers stay its own: its slice of every tensor is what its network alone would hold, and
its optimizer step is Keras's arithmetic with its own learning rate. The training loop and
the run records are `training.population`'s.
"""

from __future__ import annotations

import inspect

import keras
import numpy as np
import tensorflow as tf

from highway_study.models.lesion import SHUT
from highway_study.nn import fast_stack, native_stack
from highway_study.training.optim import learning_rate

EVAL_BATCH = 1024
OPTIMIZERS = ("sgd", "momentum", "adam")
# Keras's own Adam defaults (a config names only the learning rate), so that a member's
# step is the step keras.optimizers.Adam takes for a run alone.
_ADAM_DEFAULTS = inspect.signature(keras.optimizers.Adam).parameters
ADAM_BETA_1 = _ADAM_DEFAULTS["beta_1"].default
ADAM_BETA_2 = _ADAM_DEFAULTS["beta_2"].default
ADAM_EPSILON = _ADAM_DEFAULTS["epsilon"].default


class Population:
    """The members' weights and optimizer state, stacked, in `groups` independent parts."""

    def __init__(self, members, initial, groups: int, total_steps: int | None = None,
                 stack: str = "xla"):
        """`stack`: how the highway layers are computed, "xla" (`fast_stack`, in `groups`
        parts) or "native" (`native_stack`, the compiled kernel, which spreads the members
        over the cores itself, so the population is one part: two parts each calling the
        kernel on one core ran one after the other, at about half the speed)."""
        cfg = members[0].cfg
        self.activation = keras.activations.get(cfg.model.activation)
        self.stack = stack
        if stack == "native":
            groups = 1
        self.mean_loss = cfg.loss_reduction != "sum"
        self.optimizer = cfg.optimizer.name
        count = len(members)
        groups = max(1, min(groups, count))
        bounds = np.linspace(0, count, groups + 1).round().astype(int)
        self.slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        self.groups = [Group([initial[k] for k in range(s.start, s.stop)],
                              [members[k].cfg for k in range(s.start, s.stop)],
                              self.optimizer, total_steps) for s in self.slices]
        self._step = tf.function(self._step_graph, reduce_retracing=True)
        self._evaluate = tf.function(self._evaluate_graph, reduce_retracing=True)

    def _locate(self, k: int):
        for group, part in zip(self.groups, self.slices):
            if part.start <= k < part.stop:
                return group, k - part.start
        raise IndexError(k)

    def forward(self, group, x, training: bool):
        h = self.activation(tf.matmul(x, group.w_in) + group.b_in)
        if self.stack == "native":
            h = native_stack.population_stack(h, group.kernel, group.bias, self.activation,
                                              training=training)
        else:
            h = fast_stack.highway_stack(h, group.kernel, group.bias, self.activation,
                                         training=training, streams=1)
        return tf.matmul(h, group.w_out) + group.b_out

    def _step_graph(self, xs, ys, step):
        losses, correct = [], []
        for group, x, y in zip(self.groups, xs, ys):
            with tf.GradientTape() as tape:
                logits = self.forward(group, x, training=True)
                xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
                loss = tf.reduce_sum(xent, axis=1)
                if self.mean_loss:
                    loss = loss / tf.cast(tf.shape(y)[1], loss.dtype)
                total = tf.reduce_sum(loss)  # members' gradients stay their own
            grads = tape.gradient(total, group.variables)
            group.apply(grads, tf.math.is_finite(loss), step)
            losses.append(loss)
            correct.append(tf.reduce_sum(tf.cast(
                tf.argmax(logits, axis=-1, output_type=y.dtype) == y, tf.float32), axis=1))
        return tf.concat(losses, 0), tf.concat(correct, 0)

    def step(self, xs: list, ys: list, step: int = 0):
        """Optimizer step `step` (0-based, what the schedule sees) of every member on its
        batch; (losses, correct counts)."""
        x_parts = [tf.constant(np.stack(xs[s])) for s in self.slices]
        y_parts = [tf.constant(np.stack(ys[s])) for s in self.slices]
        losses, correct = self._step(x_parts, y_parts, tf.constant(step, tf.int64))
        return losses.numpy(), correct.numpy()

    def learning_rates(self, step: int) -> np.ndarray:
        """Every member's learning rate after `step` steps, as its optimizer reports it."""
        return np.concatenate([
            np.broadcast_to(np.asarray(group.lr if group.schedule is None
                                       else group.schedule(step)), group.lr.shape)
            for group in self.groups])

    def freeze(self, k: int) -> None:
        """Member k keeps its weights from now on (its loss was not finite)."""
        group, i = self._locate(k)
        group.frozen[i] = True
        group.sync_frozen()

    def _evaluate_graph(self, xs, ys):
        sums, correct = [], []
        for group, x, y in zip(self.groups, xs, ys):
            logits = self.forward(group, x, training=False)
            xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            sums.append(tf.reduce_sum(xent, axis=1))
            correct.append(tf.reduce_sum(tf.cast(
                tf.argmax(logits, axis=-1, output_type=y.dtype) == y, tf.float32), axis=1))
        return tf.concat(sums, 0), tf.concat(correct, 0)

    def evaluate(self, xs: list, ys: list) -> tuple[np.ndarray, np.ndarray]:
        """(mean cross-entropy, accuracy) of every member on its own (x, y)."""
        count = len(xs[0])
        sums, correct = np.zeros(len(xs)), np.zeros(len(xs))
        for begin in range(0, count, EVAL_BATCH):
            chunk = slice(begin, begin + EVAL_BATCH)
            s, c = self._evaluate(
                [tf.constant(np.stack([x[chunk] for x in xs[p]])) for p in self.slices],
                [tf.constant(np.stack([y[chunk] for y in ys[p]])) for p in self.slices])
            sums += s.numpy()
            correct += c.numpy()
        return sums / count, correct / count

    def gate_activity(self, xs: list) -> np.ndarray:
        """[members, depth] mean transform-gate activity on each member's gate batch.

        Member by member, with exactly a run alone's computation: a batched mean would sum
        in an order that depends on the population's size, and a member's record would
        then depend on who else trained beside it. The compiled kernel computes each member
        on its own as well, all in one call.
        """
        rows = []
        for group, part in zip(self.groups, self.slices):
            kernel, bias = group.kernel.numpy(), group.bias.numpy()
            w_in, b_in = group.w_in.numpy(), group.b_in.numpy()
            inputs = [self.activation(tf.matmul(x, w_in[i]) + b_in[i, 0])
                      for i, x in enumerate(xs[part])]
            if self.stack == "native":
                rows.extend(native_stack.gate_means(np.stack(inputs), kernel, bias,
                                                    self.activation))
                continue
            for i, h in enumerate(inputs):
                rows.append(np.asarray(fast_stack.gate_means(
                    h, tf.constant(kernel[:, i]), tf.constant(bias[:, i, 0]),
                    self.activation)))
        return np.stack(rows)

    def shut_gate(self, layer: int):
        """Force layer `layer`'s transform gate shut in every member; returns a restorer."""
        saved = [group.bias[layer].numpy() for group in self.groups]
        for group in self.groups:
            width = group.bias.shape[-1] // 2
            value = group.bias[layer].numpy()
            value[..., width:] = SHUT
            group.bias[layer].assign(value)

        def restore():
            for group, value in zip(self.groups, saved):
                group.bias[layer].assign(value)

        return restore

    def member_arrays(self, k: int) -> dict:
        group, i = self._locate(k)
        return group.member_arrays(i)


MEMBERS_PER_GROUP = 2  # in deep populations (docs/benchmark.md)
SMALL_GROUPS_FROM_DEPTH = 100


def default_groups(members: int, depth: int) -> int:
    """How many independent parts a population is cut into when the launcher does not say.

    Deep stacks (SMALL_GROUPS_FROM_DEPTH layers or more) run each member faster in parts of
    about MEMBERS_PER_GROUP members, which TensorFlow schedules over the cores (what each
    layer touches then stays in cache); shallower ones gain nothing from it and keep one
    part per core (`fast_stack.default_streams()`).
    """
    per_core = fast_stack.default_streams()
    if depth < SMALL_GROUPS_FROM_DEPTH:
        return per_core
    return max(per_core, -(-members // MEMBERS_PER_GROUP))


@tf.function(jit_compile=True)
def _sgd_update(var, grad, lr):
    """var -= lr * grad, one pass over the weight fused by XLA (as TensorFlow ops, the
    product and the update were two passes over a deep stack's kernel: docs/benchmark.md).
    multiply_no_nan: a member with a zero rate moves by exactly 0, even on a NaN gradient."""
    var.assign_sub(tf.math.multiply_no_nan(grad, lr))


@tf.function(jit_compile=True)
def _momentum_update(var, accum, grad, lr, momentum, gate):
    """Keras's SGD with momentum (accum = accum * momentum - lr * grad; var += accum) for
    every member whose `gate` is on, fused like _sgd_update."""
    accum_next = accum * momentum - tf.math.multiply_no_nan(grad, lr)
    accum.assign(tf.where(gate, accum_next, accum))
    var.assign(tf.where(gate, var + accum_next, var))


@tf.function(jit_compile=True)
def _adam_update(var, m, v, grad, alpha, gate):
    """One Adam step of one weight for every member whose `gate` is on, fused by XLA into
    few passes over the weight: as separate TensorFlow ops, every op was a pass over a deep
    stack's kernel (docs/benchmark.md)."""
    beta_1, beta_2 = ADAM_BETA_1, ADAM_BETA_2
    grad = tf.where(gate, grad, 0.0)
    m_next = m + (grad - m) * (1 - beta_1)
    v_next = v + (tf.square(grad) - v) * (1 - beta_2)
    move = (m_next * alpha) / (tf.sqrt(v_next) + ADAM_EPSILON)
    m.assign(tf.where(gate, m_next, m))
    v.assign(tf.where(gate, v_next, v))
    var.assign(tf.where(gate, var - move, var))


class Group:
    """Part of a population: its members' weights on a member axis, and their optimizer state.

    Layout: w_in [K, F, w], b_in [K, 1, w], kernel [depth, K, w, 2w], bias [depth, K, 1, 2w],
    w_out [K, w, C], b_out [K, 1, C] (the bias axes of length 1 broadcast over the batch).
    Optimizer state has the weights' layout: `m_<name>` (the momentum buffer of SGD with
    momentum, Adam's first moment) and `v_<name>` (Adam's second moment).
    """

    NAMES = ("w_in", "b_in", "kernel", "bias", "w_out", "b_out")
    MEMBER_AXIS = {"w_in": 0, "b_in": 0, "kernel": 1, "bias": 1, "w_out": 0, "b_out": 0}
    SLOTS = {"sgd": (), "momentum": ("m",), "adam": ("m", "v")}

    def __init__(self, initial: list[dict], configs, optimizer: str,
                 total_steps: int | None = None):
        for name in self.NAMES:
            setattr(self, name, tf.Variable(self._stack(initial, name), name=name))
        self.variables = [getattr(self, name) for name in self.NAMES]
        self.lr = tf.constant([float(c.optimizer.learning_rate) for c in configs], tf.float32)
        # The members' rates as Keras's optimizer computes them at each step (the same
        # schedule object, given all members' initial rates at once).
        self.schedule = learning_rate(configs[0].optimizer.copy(), total_steps)
        if not isinstance(self.schedule, keras.optimizers.schedules.LearningRateSchedule):
            self.schedule = None
        elif isinstance(self.schedule, keras.optimizers.schedules.CosineDecay):
            self.schedule = keras.optimizers.schedules.CosineDecay(self.lr, total_steps)
        self.optimizer = optimizer
        self.momentum = tf.constant(float(configs[0].optimizer.get("momentum") or 0.0),
                                    tf.float32)
        self.slots = {slot: [tf.Variable(self._stack(initial, name, slot), name=f"{slot}_{name}")
                             for name in self.NAMES]
                      for slot in self.SLOTS[optimizer]}
        self.frozen = np.zeros(len(configs), bool)
        self._frozen = tf.Variable(self.frozen, trainable=False)

    def _stack(self, initial, name, slot=None):
        """The members' arrays of one weight (or of its optimizer slot, zeros when new)."""
        key = name if slot is None else f"{slot}_{name}"
        return np.stack([w.get(key, np.zeros_like(w[name])) for w in initial],
                        axis=self.MEMBER_AXIS[name])

    def apply(self, grads, finite, step):
        """One optimizer step per member with Keras's arithmetic. Members whose loss is not
        finite, or who diverged before, get no step and keep their optimizer state: SGD
        multiplies their possibly non-finite gradients by a zero learning rate
        (multiply_no_nan gives exactly 0), momentum and Adam leave their variables
        untouched."""
        moves = tf.logical_and(finite, tf.logical_not(self._frozen))
        rate = self.lr if self.schedule is None else self.schedule(step)
        if self.optimizer == "adam":
            self._adam(grads, moves, rate, step)
            return
        lr = tf.where(moves, rate, 0.0)
        for index, (var, grad) in enumerate(zip(self.variables, grads)):
            member_lr = self._broadcast(lr, var, self.NAMES[index])
            if self.optimizer == "momentum":
                _momentum_update(var, self.slots["m"][index], grad, member_lr, self.momentum,
                                 self._broadcast(moves, var, self.NAMES[index]))
            else:
                _sgd_update(var, grad, member_lr)

    def _adam(self, grads, moves, rate, step):
        """keras.optimizers.Adam's update_step (default betas, epsilon, no amsgrad), in its
        order of operations, with a learning rate per member."""
        beta_1, beta_2 = ADAM_BETA_1, ADAM_BETA_2
        local_step = tf.cast(step + 1, tf.float32)
        beta_1_power = tf.pow(tf.constant(beta_1, tf.float32), local_step)
        beta_2_power = tf.pow(tf.constant(beta_2, tf.float32), local_step)
        alpha = rate * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        for index, (var, grad) in enumerate(zip(self.variables, grads)):
            name = self.NAMES[index]
            _adam_update(var, self.slots["m"][index], self.slots["v"][index], grad,
                         self._broadcast(alpha, var, name), self._broadcast(moves, var, name))

    def _broadcast(self, values, var, name):
        shape = [1] * len(var.shape)
        shape[self.MEMBER_AXIS[name]] = -1
        return tf.reshape(values, shape)

    def sync_frozen(self):
        self._frozen.assign(self.frozen)

    def member_arrays(self, i: int) -> dict:
        arrays = {}
        for index, name in enumerate(self.NAMES):
            axis = self.MEMBER_AXIS[name]
            arrays[name] = np.take(self.variables[index].numpy(), i, axis)
            for slot, variables in self.slots.items():
                arrays[f"{slot}_{name}"] = np.take(variables[index].numpy(), i, axis)
        return arrays
