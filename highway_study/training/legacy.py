"""Reading what earlier versions wrote: a run alone's Keras checkpoint (`.weights.h5`).

Before the one engine, a run alone trained with Keras `fit` and saved its weights and its
Keras optimizer's state in one .h5 file; such a run resumes from it with the engine (its
state taken into the layout of training.checkpoint).
"""

from __future__ import annotations

from highway_study.models import build_model
from highway_study.training.optim import make_optimizer


def read_keras_checkpoint(cfg, dataset, path) -> dict:
    """{"weights", "slots"} of the Keras checkpoint at `path`, for a model of `cfg`."""
    model = build_model(cfg, dataset.num_features, dataset.num_classes, dataset.image_shape)
    optimizer = make_optimizer(cfg.optimizer, 1)
    optimizer.build(model.trainable_variables)
    model.compile(optimizer=optimizer)
    model.load_weights(str(path))
    slots = {}
    if cfg.optimizer.name == "momentum":
        slots["m"] = [v.numpy() for v in optimizer.momentums]
    elif cfg.optimizer.name == "adam":
        slots["m"] = [v.numpy() for v in optimizer._momentums]
        slots["v"] = [v.numpy() for v in optimizer._velocities]
    return {"weights": model.get_weights(), "slots": slots}
