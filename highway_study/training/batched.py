"""The fast members of the engine: fully connected highway nets with stacked weights.

Every member's weights sit on a member axis of one tensor, so each layer is one batched
matmul for all members and the highway stack one call of `nn.fast_stack` (XLA) or of the
compiled kernel (`nn.native_stack`). Each member's numbers stay its own: its slice of every
tensor is what its network alone would hold, and its optimizer step is Keras's arithmetic
with its own learning rate (training.updates). The members are cut into `groups`
independent parts, which TensorFlow runs side by side.

A member's state leaves and enters in the layout of its Keras model (`model.get_weights()`
order and shapes), so a checkpoint does not depend on which members computed it.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from highway_study.models.lesion import SHUT
from highway_study.nn import fast_stack, native_stack
from highway_study.training.updates import Updates

EVAL_BATCH = 1024
# The weights of a highway_fc model in its Keras order, and where each holds its members.
NAMES = ("w_in", "b_in", "kernel", "bias", "w_out", "b_out")
MEMBER_AXIS = {"w_in": 0, "b_in": 0, "kernel": 1, "bias": 1, "w_out": 0, "b_out": 0}
MEMBERS_PER_GROUP = 2  # in deep populations (docs/benchmark.md)
SMALL_GROUPS_FROM_DEPTH = 100


def default_groups(members: int, depth: int) -> int:
    """How many independent parts a population is cut into when the launcher does not say.

    Deep stacks run each member faster in parts of about MEMBERS_PER_GROUP members, which
    TensorFlow schedules over the cores (what each layer touches then stays in cache);
    shallower ones keep one part per core (`fast_stack.default_streams()`).
    """
    per_core = fast_stack.default_streams()
    if depth < SMALL_GROUPS_FROM_DEPTH:
        return per_core
    return max(per_core, -(-members // MEMBERS_PER_GROUP))


def member_losses(logits, ys, mean_loss: bool):
    """Each member's cross-entropy on its batch (logits [members, batch, classes])."""
    losses = tf.reduce_sum(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=ys, logits=logits), axis=1)
    return losses / tf.cast(tf.shape(ys)[1], losses.dtype) if mean_loss else losses


def member_correct(logits, ys):
    """Each member's count of right answers on its batch."""
    return tf.reduce_sum(tf.cast(
        tf.argmax(logits, axis=-1, output_type=ys.dtype) == ys, tf.float32), axis=1)


def _member_shape(name: str, keras_shape) -> tuple:
    """A member's slice of the stacked weight `name`: the bias axes of length 1 broadcast
    over the batch."""
    shape = tuple(keras_shape)
    if name in ("b_in", "b_out"):
        return (1, *shape)
    if name == "bias":
        return (shape[0], 1, shape[1])
    return shape


class Group:
    """Part of the members: their stacked weights and optimizer state.

    Layout: w_in [K, F, w], b_in [K, 1, w], kernel [depth, K, w, 2w], bias [depth, K, 1, 2w],
    w_out [K, w, C], b_out [K, 1, C].
    """

    def __init__(self, states: list[dict], configs, total_steps: int | None):
        shapes = [w.shape for w in states[0]["weights"]]
        self.variables = []
        for index, name in enumerate(NAMES):
            stacked = self._stack([s["weights"][index] for s in states], name, shapes[index])
            self.variables.append(tf.Variable(stacked, name=name))
        for name, variable in zip(NAMES, self.variables):
            setattr(self, name, variable)
        slots = {}
        for slot in states[0].get("slots", {}):
            slots[slot] = [self._stack([s["slots"][slot][i] for s in states], name, shapes[i])
                           for i, name in enumerate(NAMES)]
        self.updates = Updates(self.variables, [MEMBER_AXIS[n] for n in NAMES], configs,
                               total_steps, slots)
        self.frozen = np.zeros(len(configs), bool)
        self._frozen = tf.Variable(self.frozen, trainable=False)
        self.keras_shapes = shapes

    @staticmethod
    def _stack(arrays, name, keras_shape):
        shape = _member_shape(name, keras_shape)
        return np.stack([np.reshape(a, shape) for a in arrays], axis=MEMBER_AXIS[name])

    def apply(self, grads, finite, step):
        moves = tf.logical_and(finite, tf.logical_not(self._frozen))
        self.updates.apply(grads, moves, step)

    def member_state(self, i: int) -> dict:
        """Member i's weights and optimizer slots in its Keras model's layout."""
        def take(variables):
            return [np.take(v.numpy(), i, MEMBER_AXIS[name]).reshape(shape)
                    for v, name, shape in zip(variables, NAMES, self.keras_shapes)]
        return {"weights": take(self.variables),
                "slots": {slot: take(values) for slot, values in self.updates.slots.items()}}


class StackedHighway:
    """A population of highway_fc nets (any size, one included) on stacked weights."""

    def __init__(self, configs, states: list[dict], groups: int,
                 total_steps: int | None = None, kernel: str = "xla"):
        """`kernel`: how the highway layers are computed, "xla" (`fast_stack`, in `groups`
        parts) or "native" (`native_stack`, which spreads the members over the cores itself,
        so the population is one part)."""
        cfg = configs[0]
        self.activation = keras.activations.get(cfg.model.activation)
        self.kernel = kernel
        if kernel == "native":
            groups = 1
        self.mean_loss = cfg.loss_reduction != "sum"
        self.streams = cfg.model.get("streams")  # None: fast_stack.default_streams()
        count = len(configs)
        groups = max(1, min(groups, count))
        bounds = np.linspace(0, count, groups + 1).round().astype(int)
        self.slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        self.groups = [Group(states[s], configs[s], total_steps) for s in self.slices]
        self._step = tf.function(self._step_graph, reduce_retracing=True)
        self._evaluate = tf.function(self._evaluate_graph, reduce_retracing=True)

    def _locate(self, k: int):
        for group, part in zip(self.groups, self.slices):
            if part.start <= k < part.stop:
                return group, k - part.start
        raise IndexError(k)

    def forward(self, group, x, training: bool):
        h = self.activation(tf.matmul(x, group.w_in) + group.b_in)
        if self.kernel == "native":
            h = native_stack.population_stack(h, group.kernel, group.bias, self.activation,
                                              training=training)
        elif group.frozen.shape[0] == 1:  # one member: its batch cut into streams instead
            h = fast_stack.highway_stack(h[0], group.kernel[:, 0], group.bias[:, 0, 0],
                                         self.activation, training=training,
                                         streams=self.streams)[None]
        else:
            h = fast_stack.highway_stack(h, group.kernel, group.bias, self.activation,
                                         training=training, streams=1)
        return tf.matmul(h, group.w_out) + group.b_out

    def _step_graph(self, xs, ys, step):
        losses, correct = [], []
        for group, x, y in zip(self.groups, xs, ys):
            with tf.GradientTape() as tape:
                logits = self.forward(group, x, training=True)
                loss = member_losses(logits, y, self.mean_loss)
                total = tf.reduce_sum(loss)  # members' gradients stay their own
            grads = tape.gradient(total, group.variables)
            group.apply(grads, tf.math.is_finite(loss), step)
            losses.append(loss)
            correct.append(member_correct(logits, y))
        return tf.concat(losses, 0), tf.concat(correct, 0)

    def step(self, xs: list, ys: list, step: int = 0):
        """Optimizer step `step` (0-based, what the schedule sees) of every member on its
        batch; (losses, correct counts)."""
        x_parts = [tf.constant(np.stack(xs[s])) for s in self.slices]
        y_parts = [tf.constant(np.stack(ys[s])) for s in self.slices]
        losses, correct = self._step(x_parts, y_parts, tf.constant(step, tf.int64))
        return losses.numpy(), correct.numpy()

    def reseed(self, seeds_of) -> None:
        """Highway_fc nets hold no random layers: nothing to reseed."""

    def rates(self, step: int) -> np.ndarray:
        """Every member's learning rate after `step` steps, as its optimizer reports it."""
        return np.concatenate([np.asarray(g.updates.rates(step)).reshape(-1)
                               * np.ones(g.frozen.shape) for g in self.groups])

    def freeze(self, k: int) -> None:
        """Member k keeps its weights from now on (its loss was not finite, or it stopped)."""
        group, i = self._locate(k)
        group.frozen[i] = True
        group._frozen.assign(group.frozen)

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

    def gate_activity(self, xs: list) -> list[list[float]]:
        """Every member's mean transform-gate activity per layer on its gate batch.

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
            if self.kernel == "native":
                rows.extend(native_stack.gate_means(np.stack(inputs), kernel, bias,
                                                    self.activation))
                continue
            for i, h in enumerate(inputs):
                rows.append(np.asarray(fast_stack.gate_means(
                    h, tf.constant(kernel[:, i]), tf.constant(bias[:, i, 0]),
                    self.activation)))
        return [[float(g) for g in row] for row in rows]

    def lesions(self, everies: list, xs: list, ys: list) -> list:
        """[{"layer", "val_accuracy"}] per member for every lesion_every-th layer (None
        where a member's lesion_every is 0): its gate forced shut in every member at once."""
        results = [[] if e else None for e in everies]
        depth = self.groups[0].kernel.shape[0]
        for layer in sorted({n for e in everies if e for n in range(0, depth, e)}):
            saved = [group.bias[layer].numpy() for group in self.groups]
            for group in self.groups:
                value = group.bias[layer].numpy()
                value[..., value.shape[-1] // 2:] = SHUT
                group.bias[layer].assign(value)
            try:
                _, accuracy = self.evaluate(xs, ys)
            finally:
                for group, value in zip(self.groups, saved):
                    group.bias[layer].assign(value)
            for k, e in enumerate(everies):
                if e and layer % e == 0:
                    results[k].append({"layer": layer, "val_accuracy": float(accuracy[k])})
        return results

    def member_state(self, k: int) -> dict:
        group, i = self._locate(k)
        return group.member_state(i)
