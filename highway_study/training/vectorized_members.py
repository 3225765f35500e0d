"""The generic fast members of the engine: one Keras model's graph, vectorized over members.

Every member's weights sit on a leading member axis of one tensor per weight, and the
catalog's own Keras model computes all members at once: `tf.vectorized_map` turns its
forward pass (`stateless_call` on one member's weights) into batched operations, one per
layer for the whole population. So plain, residual and shallow nets, softmax regression
and any dense model added the documented way train as fast populations with no formula
written twice. Models holding state other than trainable weights (dropout's random state)
stay with `KerasMembers`, whose probes, lesions and evaluation this class shares after
copying a member's weights into its Keras model.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from highway_study.training.batched import member_correct, member_losses
from highway_study.training.keras_members import KerasMembers
from highway_study.training.updates import Updates


def vectorizable(model) -> bool:
    """Whether a member's whole state is its trainable weights (no random or running state)."""
    return not model.non_trainable_variables


class VectorizedMembers(KerasMembers):
    """A population of one model's weights (any size, one included), trained as one graph."""

    kernel = "vectorized"

    def __init__(self, configs, models, states: list[dict], total_steps: int | None = None):
        self.models = list(models)
        self.template = self.models[0]
        self.mean_loss = configs[0].loss_reduction != "sum"
        self.weights = [tf.Variable(np.stack([s["weights"][i] for s in states]), name=f"w{i}")
                        for i in range(len(states[0]["weights"]))]
        slots = {slot: [np.stack([s["slots"][slot][i] for s in states])
                        for i in range(len(self.weights))]
                 for slot in states[0].get("slots", {})}
        self.updates = Updates(self.weights, [0] * len(self.weights), configs, total_steps,
                               slots)
        self.frozen = np.zeros(len(self.models), bool)
        self._frozen = tf.Variable(self.frozen, trainable=False)
        self._step = tf.function(self._step_graph, reduce_retracing=True)
        self._logits = tf.function(self._logits_graph, reduce_retracing=True)

    def _all_logits(self, xs, training: bool):
        def member(weights_and_x):
            weights, x = weights_and_x
            return self.template.stateless_call(list(weights), [], x, training=training)[0]

        return tf.vectorized_map(member, (tuple(self.weights), xs))

    def _step_graph(self, xs, ys, step):
        with tf.GradientTape() as tape:
            logits = self._all_logits(xs, training=True)
            losses = member_losses(logits, ys, self.mean_loss)
            total = tf.reduce_sum(losses)  # members' gradients stay their own
        grads = tape.gradient(total, self.weights)
        moves = tf.logical_and(tf.math.is_finite(losses), tf.logical_not(self._frozen))
        self.updates.apply(grads, moves, step)
        return losses, member_correct(logits, ys)

    def step(self, xs: list, ys: list, step: int = 0):
        """Optimizer step `step` (0-based) of every member on its batch; (losses, correct)."""
        losses, correct = self._step(tf.constant(np.stack(xs)), tf.constant(np.stack(ys)),
                                     tf.constant(step, tf.int64))
        return losses.numpy(), correct.numpy()

    def reseed(self, seeds_of) -> None:
        """Vectorized models hold no random layers (`vectorizable`): nothing to reseed."""

    def rates(self, step: int) -> np.ndarray:
        return np.asarray(self.updates.rates(step)).reshape(-1)

    def _logits_graph(self, xs):
        return self._all_logits(tf.stack(xs), training=False)

    def _into_models(self) -> None:
        """Copy every member's weights into its Keras model (for probes and lesions)."""
        arrays = [w.numpy() for w in self.weights]
        for k, model in enumerate(self.models):
            model.set_weights([a[k] for a in arrays])

    def gate_activity(self, xs: list) -> list[list[float]]:
        self._into_models()
        return super().gate_activity(xs)

    def lesions(self, everies: list, xs: list, ys: list) -> list:
        self._into_models()
        return super().lesions(everies, xs, ys)

    def member_state(self, k: int) -> dict:
        return {"weights": [w[k].numpy() for w in self.weights],
                "slots": {slot: [v[k].numpy() for v in values]
                          for slot, values in self.updates.slots.items()}}
