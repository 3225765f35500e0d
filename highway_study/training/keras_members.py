"""The generic members of the engine: any model of the catalog, one Keras model per member.

Every member keeps its own Keras model (built by the catalog's builder, so a model added the
documented way trains here without more code); one compiled step runs all members' forward
and backward passes and optimizer steps in one graph, which TensorFlow spreads over its
threads. The optimizer arithmetic is the engine's (training.updates), the probes and
lesions are the models' own (models.probes, models.lesion).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from highway_study.models.lesion import lesion_accuracies
from highway_study.models.probes import gate_activity
from highway_study.training.updates import Updates

EVAL_BATCH = 1024
SEED_STATE = "seed_generator_state"  # the state of a random layer (dropout)


class KerasMembers:
    """A population of Keras models (any size, one included)."""

    kernel = "keras"

    def __init__(self, configs, models, states: list[dict], total_steps: int | None = None):
        self.models = list(models)
        self.mean_loss = configs[0].loss_reduction != "sum"
        self.updates = []
        for cfg, model, state in zip(configs, self.models, states):
            model.set_weights(state["weights"])
            # Keras variables hold TensorFlow ones (`.value`), which the update steps take.
            self.updates.append(Updates([v.value for v in model.trainable_variables],
                                        [None] * len(model.trainable_variables), [cfg],
                                        total_steps, state.get("slots")))
        self.frozen = np.zeros(len(self.models), bool)
        self._frozen = tf.Variable(self.frozen, trainable=False)
        self._step = tf.function(self._step_graph, reduce_retracing=True)
        self._logits = tf.function(self._logits_graph, reduce_retracing=True)

    def _step_graph(self, xs, ys, step):
        losses, correct = [], []
        for k, (model, updates) in enumerate(zip(self.models, self.updates)):
            x, y = xs[k], ys[k]
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
                loss = tf.reduce_sum(xent)
                if self.mean_loss:
                    loss = loss / tf.cast(tf.shape(y)[0], loss.dtype)
            grads = tape.gradient(loss, model.trainable_variables)
            moves = tf.logical_and(tf.math.is_finite(loss), tf.logical_not(self._frozen[k]))
            updates.apply(grads, tf.reshape(moves, [1]), step)
            losses.append(loss)
            correct.append(tf.reduce_sum(tf.cast(
                tf.argmax(logits, axis=-1, output_type=y.dtype) == y, tf.float32)))
        return tf.stack(losses), tf.stack(correct)

    def step(self, xs: list, ys: list, step: int = 0):
        """Optimizer step `step` (0-based) of every member on its batch; (losses, correct)."""
        losses, correct = self._step([tf.constant(x) for x in xs],
                                     [tf.constant(y) for y in ys], tf.constant(step, tf.int64))
        return losses.numpy(), correct.numpy()

    def reseed(self, seeds_of) -> None:
        """Set every random layer's state from `seeds_of(k, count)` (the member's seeds of
        this epoch), so a resumed run draws what the uninterrupted one drew."""
        for k, model in enumerate(self.models):
            states = [v for v in model.variables if v.name == SEED_STATE]
            for state, value in zip(states, seeds_of(k, len(states))):
                state.assign(np.array([value, 0], dtype=state.dtype))

    def rates(self, step: int) -> np.ndarray:
        return np.concatenate([np.asarray(u.rates(step)).reshape(-1) for u in self.updates])

    def freeze(self, k: int) -> None:
        self.frozen[k] = True
        self._frozen.assign(self.frozen)

    def _logits_graph(self, xs):
        return [model(x, training=False) for model, x in zip(self.models, xs)]

    def evaluate(self, xs: list, ys: list) -> tuple[np.ndarray, np.ndarray]:
        """(mean cross-entropy, accuracy) of every member on its own (x, y)."""
        count = len(xs[0])
        sums, correct = np.zeros(len(xs)), np.zeros(len(xs))
        for begin in range(0, count, EVAL_BATCH):
            chunk = slice(begin, begin + EVAL_BATCH)
            logits = self._logits([tf.constant(x[chunk]) for x in xs])
            for k, (out, y) in enumerate(zip(logits, ys)):
                labels = tf.constant(y[chunk])
                sums[k] += float(tf.reduce_sum(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=out)))
                correct[k] += float(tf.reduce_sum(tf.cast(
                    tf.argmax(out, axis=-1, output_type=labels.dtype) == labels, tf.float32)))
        return sums / count, correct / count

    def gate_activity(self, xs: list) -> list[list[float]]:
        return [gate_activity(model, x) for model, x in zip(self.models, xs)]

    def lesions(self, everies: list, xs: list, ys: list) -> list:
        results = []
        for k, (model, every) in enumerate(zip(self.models, everies)):
            if not every:
                results.append(None)
                continue
            results.append(lesion_accuracies(
                model, lambda m, k=k: float(self._accuracy(m, xs[k], ys[k])), every))
        return results

    @staticmethod
    def _accuracy(model, x, y) -> float:
        correct = 0.0
        for begin in range(0, len(x), EVAL_BATCH):
            out = model(tf.constant(x[begin:begin + EVAL_BATCH]), training=False)
            correct += float(np.sum(np.argmax(out, axis=-1) == y[begin:begin + EVAL_BATCH]))
        return correct / len(x)

    def member_state(self, k: int) -> dict:
        return {"weights": self.models[k].get_weights(),
                "slots": self.updates[k].slot_arrays()}
