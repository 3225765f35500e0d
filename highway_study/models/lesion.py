"""Lesioning (paper, section 4.2): how much a trained net relies on each highway layer.

A layer is lesioned by forcing its transform gate shut (T = 0, pure carry), done by setting
its gate bias to a very negative value; validation accuracy is measured and the bias restored.
"""

from __future__ import annotations

from highway_study.models.probes import gate_index

SHUT = -1.0e4  # sigmoid(-1e4) is exactly 0 in float32


def lesion_accuracies(model, evaluate, every: int = 1) -> list[dict]:
    """[{"layer": i, "val_accuracy": acc}] for every `every`-th highway layer (0-based).

    `evaluate(model) -> accuracy` measures the model on the validation set (the caller's
    data and batching, so that this module needs neither).
    """
    results = []
    for number, (layer, index) in enumerate(gate_index(model)):
        if number % every:
            continue
        saved = layer.get_transform_bias(index)
        layer.set_transform_bias(index, SHUT)
        try:
            accuracy = evaluate(model)
        finally:
            layer.set_transform_bias(index, saved)
        results.append({"layer": number, "val_accuracy": accuracy})
    return results
