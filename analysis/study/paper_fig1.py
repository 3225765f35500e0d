"""The paper's Figure 1 (Srivastava, Greff and Schmidhuber 2015): plain against highway nets
of depth 10 to 100 on MNIST, each network's best setting's training-loss curve.

The runs are the trials of docs/study/run_study.sh's step 6 (`hparams_search=paper_lr` and
`paper_lr_bias`, tagged `experiment=paper_fig1`). Why the section appears on its own: the
runs analysed hold such trials, so `python -m analysis outputs/experiments/paper_fig1`
answers Figure 1's question without a flag; it writes paper_fig1.md (also appended to
report.md) and figures/paper_fig1_training_loss.
The best trial of a network is the one with the lowest training loss in its last epoch:
Figure 1 is about how well each network optimises, and shows the best setting found for each.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.markdown import figure_link, table, write_section
from analysis.tables import percent
from analysis.sanitize import loose
from highway_study import catalog, record

EXPERIMENT = "paper_fig1"
SECTION_FILE = "paper_fig1.md"
FIGURE = "paper_fig1_training_loss"


@dataclass
class Figure1:
    trials: pd.DataFrame  # one row per trial (see `trial_table`)
    best: pd.DataFrame  # the best trial of each (family, depth)
    curves: pd.DataFrame  # run, epoch (fractional), train_loss: the best trials' curves


def prepare(collection) -> Figure1 | None:
    """Figure 1's trials, best settings and curves, or None when no run is a paper_fig1 trial."""
    if collection is None:
        return None
    trials = trial_table(collection)
    if trials.empty:
        return None
    finished = trials[trials["status"] == "completed"].dropna(subset=["final_train_loss"])
    best = (finished.sort_values("final_train_loss")
            .groupby(["family", "depth"], as_index=False).first()
            .sort_values(["depth", "family"]).reset_index(drop=True))
    return Figure1(trials, best, _curves(collection, trials, best))


def trial_table(collection) -> pd.DataFrame:
    """One row per paper_fig1 trial: run, model, family, depth, learning_rate, carry_bias,
    status, epochs, final_train_loss (last epoch's), best_val_accuracy, test_accuracy."""
    rows = []
    last_loss = _last_epoch_losses(collection.curves)
    for run in collection.runs.itertuples():
        summary = record.read_summary(Path(run.path))
        config = record.flatten_config(summary.config) if summary is not None else {}
        if config.get("tags.experiment") != EXPERIMENT:
            continue
        model = run.model  # the runs table's key columns: text, numbers or NaN
        gated = catalog.family(model) == "highway"
        rows.append({
            "run": run.run, "model": model, "family": catalog.family(model),
            "depth": run.depth,
            "learning_rate": loose(config.get("optimizer.learning_rate")),
            "carry_bias": run.carry_bias if gated else None,
            "status": run.status, "epochs": run.epochs_done,
            "final_train_loss": last_loss.get(run.run),
            "best_val_accuracy": run.best_val_accuracy, "test_accuracy": run.test_accuracy,
        })
    return pd.DataFrame(rows, columns=["run", "model", "family", "depth", "learning_rate",
                                       "carry_bias", "status", "epochs", "final_train_loss",
                                       "best_val_accuracy", "test_accuracy"])


def _last_epoch_losses(curves: pd.DataFrame) -> dict:
    if curves.empty or "train_loss" not in curves:
        return {}
    last = curves.dropna(subset=["train_loss"]).sort_values("epoch").groupby("run").last()
    return last["train_loss"].to_dict()


def _curves(collection, trials, best) -> pd.DataFrame:
    """The best trials' step-resolution training loss against epochs (a step's epoch is
    step / steps per epoch, from the first epoch's metrics row); per-epoch values when a
    run has no curve points."""
    runs = set(best["run"])
    epochs = collection.curves[collection.curves["run"].isin(runs)]
    per_epoch = epochs.dropna(subset=["step"]).sort_values("epoch").groupby("run").first()
    steps_per_epoch = (per_epoch["step"] / per_epoch["epoch"]).to_dict()
    frames = []
    points = collection.points
    for run in runs:
        own = points[points["run"] == run] if "train_loss" in points else points.iloc[0:0]
        own = own.dropna(subset=["train_loss"]) if not own.empty else own
        if not own.empty and steps_per_epoch.get(run):
            frames.append(pd.DataFrame({"run": run, "epoch": own["step"] / steps_per_epoch[run],
                                        "train_loss": own["train_loss"]}))
        else:
            mine = epochs[epochs["run"] == run].dropna(subset=["train_loss"])
            frames.append(pd.DataFrame({"run": run, "epoch": mine["epoch"],
                                        "train_loss": mine["train_loss"]}))
    if not frames:
        return pd.DataFrame(columns=["run", "epoch", "train_loss"])
    return pd.concat(frames, ignore_index=True)


def draw(fig1: Figure1):
    """One panel per depth: the best plain and best highway net's training loss (log scale)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    depths = sorted(fig1.best["depth"].unique())
    fig, axes = plt.subplots(1, len(depths), figsize=(4 * len(depths), 3.4), squeeze=False,
                             sharey=True)
    colours = dict(zip(["plain", "highway"], sns.color_palette("colorblind", 2)))
    for ax, depth in zip(axes[0], depths):
        for best in fig1.best[fig1.best["depth"] == depth].itertuples():
            curve = fig1.curves[fig1.curves["run"] == best.run]
            ax.plot(curve["epoch"], curve["train_loss"], label=_label(best),
                    color=colours.get(best.family))
        ax.set_yscale("log")
        ax.set_title(f"depth {depth}")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("training loss (mean cross-entropy)")
    fig.suptitle("Best setting per network: plain vs highway (the paper's Figure 1)")
    fig.tight_layout()
    return fig


def _label(best) -> str:
    bias = f", b_T {best.carry_bias:.2f}" if best.family == "highway" else ""
    return f"{best.family} (lr {best.learning_rate:.3g}{bias})"


def write(fig1: Figure1, figures: dict, out: Path) -> str:
    """Write paper_fig1.md and paper_fig1_trials.csv into `out`, append the section to
    out/report.md when there is one; return the section."""
    fig1.trials.to_csv(out / "paper_fig1_trials.csv", index=False)
    return write_section(out, SECTION_FILE, section(fig1, figures))


def section(fig1: Figure1, figures: dict) -> str:
    trials = fig1.trials
    budget = trials.groupby(["family", "depth"]).agg(
        trials=("run", "size"), finished=("status", lambda s: int((s == "completed").sum())),
        epochs=("epochs", "max"))
    lines = ["## The paper's Figure 1: plain vs highway nets over depth", "",
             "Each network's trials (an Optuna TPE search of the learning rate, and of the "
             "carry bias for highway nets; SGD with momentum on MNIST); its best trial is the "
             "one with the lowest training loss in its last epoch. Full table: "
             "`paper_fig1_trials.csv`.", ""]
    rows = []
    for best in fig1.best.itertuples():
        row = budget.loc[(best.family, best.depth)]
        bias = f"{best.carry_bias:.2f}" if best.family == "highway" else "–"
        rows.append([best.family, best.depth, f"{row.trials} ({row.finished})",
                     f"{row.epochs:.0f}", f"{best.learning_rate:.3g}", bias,
                     f"{best.final_train_loss:.4g}", percent(best.best_val_accuracy),
                     percent(best.test_accuracy)])
    header = ["network", "depth", "trials (finished)", "epochs", "best learning rate",
              "best carry bias", "final training loss", "best validation accuracy",
              "test accuracy"]
    lines += [table(header, rows), answer(fig1.best), "", figure_link(figures, FIGURE, "Figure 1")]
    return "\n".join(lines)


def answer(best: pd.DataFrame) -> str:
    """How much worse each family's deepest best net optimises than its shallowest."""
    sentences = []
    for family in ("highway", "plain"):
        own = best[best["family"] == family].sort_values("depth")
        if len(own) < 2:
            sentences.append(f"Not answered for {family} nets: fewer than two depths have a "
                             "finished trial.")
            continue
        low, high = own.iloc[0], own.iloc[-1]
        sentences.append(
            f"{family.capitalize()} nets: final training loss {low.final_train_loss:.4g} at "
            f"depth {low.depth} and {high.final_train_loss:.4g} at depth {high.depth} "
            f"({high.final_train_loss / low.final_train_loss:.2g}x).")
    return " ".join(sentences)
