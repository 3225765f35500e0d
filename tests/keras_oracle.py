"""The oracle of the engine's tests: Keras's own training step and optimizers.

`fit_alone(cfg)` trains a configuration with `model.train_on_batch` (the step `fit` runs) and
the Keras optimizer the config names, on the batches and random states the engine draws
for it (training.order), and measures it at every epoch's end. The engine's records of the
same config must agree with it up to float rounding.
"""

from __future__ import annotations

import keras
import numpy as np

from highway_study import data
from highway_study.models import build_model
from highway_study.training import order, seed_everything, total_steps
from highway_study.training.optim import make_loss, make_optimizer


def compiled(cfg, dataset, steps=None):
    """The config's model compiled with Keras's optimizer, loss and metrics."""
    model = build_model(cfg, dataset.num_features, dataset.num_classes, dataset.image_shape)
    model.compile(optimizer=make_optimizer(cfg.optimizer, steps),
                  loss=make_loss(cfg.loss_reduction),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                           keras.metrics.SparseCategoricalCrossentropy(from_logits=True,
                                                                       name="xent")])
    return model


def evaluate(model, x, y) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) by Keras's own evaluate()."""
    results = model.evaluate(x, y, batch_size=1024, verbose=0, return_dict=True)
    return float(results["xent"]), float(results["accuracy"])


def fit_alone(cfg) -> dict:
    """{"epochs": [(step, val_loss, val_accuracy)], "test": (loss, accuracy)} of cfg trained
    by Keras."""
    dataset = data.load(cfg.data, cfg.seed)
    seed_everything(cfg.seed)
    size = len(dataset.x_train)
    total = total_steps(cfg, size)
    model = compiled(cfg, dataset, total)
    step, epoch, epochs = 0, 0, []
    while step < total:
        states = [v for v in model.variables if v.name == "seed_generator_state"]
        for state, value in zip(states, order.layer_seeds(cfg.seed, epoch, len(states))):
            state.assign(np.array([value, 0], dtype=state.dtype))
        for batch in order.epoch_batches(cfg.seed, epoch, size, cfg.batch_size):
            model.train_on_batch(dataset.x_train[batch], dataset.y_train[batch])
            step += 1
            if step >= total:
                break
        epochs.append((step, *evaluate(model, dataset.x_val, dataset.y_val)))
        epoch += 1
    return {"epochs": epochs, "test": evaluate(model, dataset.x_test, dataset.y_test)}
