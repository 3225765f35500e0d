"""analysis reads an Optuna study (SQLite, as the hparams search stores it) and plots it."""

from __future__ import annotations

import math
import re
import warnings

import matplotlib
import matplotlib.pyplot as plt
import optuna
import pandas as pd
import pytest

from analysis.__main__ import main
from analysis.optuna_figures import trials_figure
from analysis.optuna_study import load_trials
from highway_study import record


@pytest.fixture()
def storage(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="highway_search", storage=url, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial):
        depth = trial.suggest_int("depth", 1, 50)
        bias = trial.suggest_float("carry_bias", -6.0, 1.0)
        rate = trial.suggest_float("optimizer.learning_rate", 1e-3, 1.0, log=True)
        return 1.0 / (1.0 + abs(bias + 2.0) + depth / 100) + 0.01 * math.log10(rate)

    study.optimize(objective, n_trials=12)
    return url, study


def test_study_is_plotted_and_tabled(storage, tmp_path, capsys):
    url, study = storage
    out = tmp_path / "out"
    assert main(["--optuna", url, "--study", "highway_search", "--out", str(out)]) == 0
    assert (out / "figures" / "optuna.png").exists()
    trials = pd.read_csv(out / "optuna_trials.csv")
    assert len(trials) == 12
    assert {"depth", "carry_bias", "optimizer.learning_rate", "value"} <= set(trials.columns)
    report = (out / "report.md").read_text()
    assert f"best value {study.best_value:.4f}" in report
    assert f"depth = {study.best_params['depth']}" in report
    capsys.readouterr()


def test_missing_database_is_not_created(tmp_path, capsys):
    missing = tmp_path / "nope.db"
    assert main(["--optuna", f"sqlite:///{missing}", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert "nope.db" in err and "does not exist" in err and len(err.splitlines()) == 1
    assert not missing.exists()


def test_unknown_study_name_lists_the_studies(storage, tmp_path, capsys):
    url, _ = storage
    assert main(["--optuna", url, "--study", "other", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "'other'" in err and "highway_search" in err


def test_study_of_unknown_parameters_is_refused(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'other.db'}"
    study = optuna.create_study(study_name="unrelated", storage=url)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    assert main(["--optuna", url, "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "searched none of the parameters this analysis draws (carry_bias, depth" in err
    assert err.endswith("its parameters are x.")


def per_depth_study(url, name="bias_lr_highway_fc_mnist_depth100", trials=10):
    """A study as hparams_search=bias_lr_optuna leaves it: carry bias and learning rate only."""
    study = optuna.create_study(study_name=name, storage=url, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=1))
    study.set_user_attr(record.STUDY_OBJECTIVES_ATTR, ["best_val_accuracy"])

    def objective(trial):
        bias = trial.suggest_float("carry_bias", -20.0, -1.0)
        rate = trial.suggest_float("optimizer.learning_rate", 1e-4, 1.0, log=True)
        return 0.9 - 0.01 * abs(bias + 4.0) - 0.05 * abs(math.log10(rate) + 2)

    study.optimize(objective, n_trials=trials)
    return study


def pareto_study(url, named=True, trials=12):
    """A study as hparams_search=pareto_optuna leaves it: accuracy and layers used."""
    study = optuna.create_study(study_name="pareto_highway_fc_mnist_depth100", storage=url,
                                directions=["maximize", "maximize"],
                                sampler=optuna.samplers.RandomSampler(seed=2))
    if named:
        study.set_user_attr(record.STUDY_OBJECTIVES_ATTR, ["best_val_accuracy", "layers_used"])

    def objective(trial):
        bias = trial.suggest_float("carry_bias", -20.0, -1.0)
        rate = trial.suggest_float("optimizer.learning_rate", 1e-4, 1.0, log=True)
        accuracy = 0.99 - 0.003 * abs(bias + 10) - 0.01 * abs(math.log10(rate) + 2)
        return accuracy, float(max(0, int(100 + 5 * bias)))  # a trade-off between the two

    study.optimize(objective, n_trials=trials)
    return study


def test_a_per_depth_study_is_drawn_with_optunas_plots(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = per_depth_study(url)
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        style = dict(matplotlib.rcParams)
        assert main(["--optuna", url, "--out", str(out)]) == 0
        assert dict(matplotlib.rcParams) == style  # Optuna's ggplot style stayed local
    assert not [w for w in caught if issubclass(w.category, optuna.exceptions.ExperimentalWarning)]
    figures = {path.stem for path in (out / "figures").iterdir()}
    assert figures == {"optuna", "optuna_history", "optuna_importances", "optuna_slice"}
    trials = pd.read_csv(out / "optuna_trials.csv")
    assert len(trials) == 10 and "depth" not in trials
    assert {"carry_bias", "optimizer.learning_rate", "value"} <= set(trials.columns)
    report = (out / "report.md").read_text()
    best = study.best_trial
    assert (f"Best trial {best.number}: best value {best.value:.4f} (best val accuracy "
            f"{100 * best.value:.2f}%), at carry_bias = {best.params['carry_bias']:.3g}, "
            f"learning rate = {best.params['optimizer.learning_rate']:.3g}.") in report
    assert "Parameter importances (a random forest's" in report and "carry_bias 0." in report
    for name in figures:
        assert f"(figures/{name}.png)" in report
    capsys.readouterr()


def test_the_trials_figure_has_a_log_learning_rate_axis_and_readable_bins(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    per_depth_study(url, trials=16)
    name, trials = load_trials(url)
    fig = trials_figure(trials, name)
    scatter = fig.axes[0]
    heatmap = next(ax for ax in fig.axes if ax.get_title() == "Best value per bin")
    assert scatter.get_yscale() == "log" and scatter.get_ylabel() == "learning rate"
    assert scatter.get_xlabel().startswith("carry_bias")
    columns = [label.get_text() for label in heatmap.get_xticklabels()]
    rows = [label.get_text() for label in heatmap.get_yticklabels()]
    assert columns and all(re.fullmatch(r"-?\d+ to -?\d+", text) for text in columns), columns
    assert rows and all(re.fullmatch(r"[\d.e-]+ to [\d.e-]+", text) for text in rows), rows
    assert set(rows) <= {"0.0001 to 0.001", "0.001 to 0.01", "0.01 to 0.1", "0.1 to 1"}
    plt.close(fig)


def test_a_two_objective_study_gets_a_pareto_table_and_front(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = pareto_study(url)
    out = tmp_path / "out"
    assert main(["--optuna", url, "--out", str(out)]) == 0
    trials = pd.read_csv(out / "optuna_trials.csv")
    assert {"best_val_accuracy", "layers_used", "pareto_optimal"} <= set(trials.columns)
    front = {t.number for t in study.best_trials}
    assert set(trials.loc[trials["pareto_optimal"], "number"]) == front and len(front) >= 2
    figures = {path.stem for path in (out / "figures").iterdir()}
    assert {"optuna", "optuna_pareto", "optuna_history_best_val_accuracy",
            "optuna_history_layers_used", "optuna_slice_layers_used",
            "optuna_importances_best_val_accuracy"} <= figures
    report = (out / "report.md").read_text()
    assert "Best trial" not in report
    assert f"{len(front)} Pareto-optimal trials (no other trial is as good" in report
    header = "| trial | best val accuracy | layers used | carry_bias | learning rate |"
    assert header in report
    table = report.split(header, 1)[1].split("\n\n", 1)[0].strip().splitlines()[1:]
    assert len(table) == len(front)
    best = max(study.best_trials, key=lambda t: t.values[0])  # sorted by accuracy
    assert table[0] == (f"| {best.number} | {100 * best.values[0]:.2f}% | {int(best.values[1])} "
                        f"| {best.params['carry_bias']:.3g} | "
                        f"{best.params['optimizer.learning_rate']:.3g} |")
    assert "![Pareto front](figures/optuna_pareto.png)" in report
    capsys.readouterr()


def test_objectives_without_recorded_names_are_numbered(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    pareto_study(url, named=False, trials=4)
    name, trials = load_trials(url)
    assert trials.attrs["objectives"] == ["values_0", "values_1"]
    assert {"values_0", "values_1", "pareto_optimal"} <= set(trials.columns)


def test_a_tiny_study_skips_importances_and_says_so(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    pareto_study(url, trials=1)
    out = tmp_path / "out"
    assert main(["--optuna", url, "--out", str(out)]) == 0
    figures = {path.stem for path in (out / "figures").iterdir()}
    assert "optuna_pareto" in figures and not any("importances" in f for f in figures)
    report = (out / "report.md").read_text()
    assert ("Parameter importances are not drawn: they need at least 2 finished trials, the "
            "study has 1.") in report
    capsys.readouterr()


def test_a_learning_rate_only_study_is_drawn(tmp_path, capsys):
    """hparams_search=paper_lr for plain nets searches the learning rate alone."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="lr", storage=url, direction="maximize")
    study.optimize(lambda t: 1 - abs(math.log10(t.suggest_float(
        "optimizer.learning_rate", 1e-3, 1.0, log=True)) + 1), n_trials=5)
    name, trials = load_trials(url)
    fig = trials_figure(trials, name)
    assert fig.axes[0].get_xscale() == "log"
    plt.close(fig)
    assert main(["--optuna", url, "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()


def depth_study(url, depth, target, model="highway_fc"):
    """A per-depth search as bias_lr_optuna records it (its fixed depth and model), whose
    trials are set: the best at carry bias `target`, one more within half a point of it."""
    study = optuna.create_study(study_name=f"bias_lr_{model}_mnist_depth{depth}", storage=url,
                                direction="maximize")
    study.set_user_attr(record.STUDY_OBJECTIVES_ATTR, ["best_val_accuracy"])
    study.set_user_attr(record.STUDY_CONFIG_ATTR, {"depth": depth, "model.name": model})
    # Far trials inside the searched range: Optuna replaces an enqueued value outside it
    # with a random one, which could land near the best.
    far = [bias for bias in (-20.0, -1.0, -10.5) if abs(bias - target) > 1.0][:2]
    for bias in (far[0], target, target - 0.25, far[1]):
        study.enqueue_trial({"carry_bias": bias, "optimizer.learning_rate": 0.01})

    def objective(trial):
        bias = trial.suggest_float("carry_bias", -20.0, -1.0)
        trial.suggest_float("optimizer.learning_rate", 1e-4, 1.0, log=True)
        return 0.95 - 0.01 * abs(bias - target)

    study.optimize(objective, n_trials=4)
    return study


@pytest.mark.parametrize("targets, verdict", [
    ({20: -2.0, 100: -6.0, 1000: -15.0},
     "depth 20: -2, depth 100: -6, depth 1000: -15: more negative at every deeper depth"),
    ({20: -6.0, 100: -2.0, 1000: -15.0},
     "depth 20: -6, depth 100: -2, depth 1000: -15: not monotonic in depth"),
])
def test_per_depth_studies_are_compared(tmp_path, capsys, targets, verdict):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    for depth in (1000, 20, 100):  # made out of order: the comparison sorts by depth
        depth_study(url, depth, targets[depth])
    out = tmp_path / "out"
    assert main(["--optuna", url, "--study", "bias_lr_*", "--out", str(out)]) == 0
    table = pd.read_csv(out / "optuna_studies.csv")
    assert table["depth"].tolist() == [20, 100, 1000]
    assert table["best_carry_bias"].tolist() == [targets[20], targets[100], targets[1000]]
    assert table["near_best"].tolist() == [2, 2, 2]  # the best and the one 0.25 below it
    report = (out / "report.md").read_text()
    assert verdict in report
    assert (f"| [`bias_lr_highway_fc_mnist_depth100`](bias_lr_highway_fc_mnist_depth100/"
            f"report.md) | highway_fc | 100 | 4 | 95.00% (trial 1) | {targets[100]:g} | 0.01 | "
            f"{targets[100] - 0.25:g} to {targets[100]:g} (2 trials) |") in report
    assert "(figures/optuna_compared.png)" in report
    assert (out / "figures" / "optuna_compared.png").exists()
    for depth in (20, 100, 1000):  # each study's own analysis beside the comparison
        own = out / f"bias_lr_highway_fc_mnist_depth{depth}"
        assert (own / "report.md").exists() and (own / "figures" / "optuna_history.png").exists()
    assert "Analysed 3 Optuna studies" in capsys.readouterr().out


def test_a_study_pattern_naming_none_is_one_sentence(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    depth_study(url, 20, -2.0)
    assert main(["--optuna", url, "--study", "bias_lr_*", "paper_*", "--out",
                 str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "--study 'paper_*' names no study" in err and "bias_lr_highway_fc_mnist_depth20" in err


def test_several_studies_beside_run_folders_are_refused(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    depth_study(url, 20, -2.0)
    depth_study(url, 100, -6.0)
    folder = tmp_path / "runs"
    folder.mkdir()
    assert main([str(folder), "--optuna", url, "--study", "bias_lr_*", "--out",
                 str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert "--study names 2 studies" in err and len(err.splitlines()) == 1


def test_plain_searches_are_drawn_beside_highway_ones_without_a_carry_bias(tmp_path):
    """The paper's Figure 1 searches: plain nets search the learning rate only."""
    from analysis import optuna_compare
    from analysis.optuna_study import load_study, trials_table

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    depth_study(url, 20, -2.0)
    plain = optuna.create_study(study_name="paper_lr_plain_fc_mnist_depth20", storage=url,
                                direction="maximize")
    plain.set_user_attr(record.STUDY_CONFIG_ATTR, {"depth": 20, "model.name": "plain_fc"})
    plain.optimize(lambda t: t.suggest_float("optimizer.learning_rate", 1e-3, 1.0, log=True),
                   n_trials=3)
    names = ["bias_lr_highway_fc_mnist_depth20", "paper_lr_plain_fc_mnist_depth20"]
    studies = {}
    for name in names:
        study = load_study(url, name)
        studies[name] = (optuna_compare.study_setting(study), trials_table(study))
    figure = optuna_compare.figure(studies)
    bias_panel, rate_panel = figure.axes[:2]
    points = lambda ax: sum(len(c.get_offsets()) for c in ax.collections)  # noqa: E731
    assert points(bias_panel) == 4 + 1  # the highway trials and its star
    assert points(rate_panel) == 4 + 1 + 3 + 1  # and the plain trials with theirs
    assert [t.get_text() for t in rate_panel.get_legend().get_texts()] == ["highway_fc",
                                                                          "plain_fc"]
    table = optuna_compare.comparison(studies)
    assert table["model"].tolist() == ["highway_fc", "plain_fc"]
    assert pd.isna(table.loc[1, "best_carry_bias"]) and table.loc[1, "trials"] == 3
    plt.close("all")


def diverged(study, count=2):
    """Trials as a diverged or failed run leaves them: 0.0 on every objective."""
    for _ in range(count):
        trial = study.ask()
        trial.suggest_float("carry_bias", -20.0, -1.0)
        trial.suggest_float("optimizer.learning_rate", 1e-4, 1.0, log=True)
        study.tell(trial, [0.0] * len(study.directions))


def test_the_pareto_front_names_its_study_and_fits_the_trials(tmp_path):
    """Optuna's plot: "Pareto-front Plot", a 0-1 accuracy axis, diverged trials at 0 like
    any other trial."""
    from analysis.optuna_figures import drawers

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = pareto_study(url, trials=12)
    study.set_user_attr(record.STUDY_CONFIG_ATTR, {
        "depth": 100, "model.name": "highway_fc", "data.name": "mnist", "loss_reduction": "sum",
        "model.kernel_initializer": "truncated_normal", "model.init_stddev": 0.1,
        "model.bias_init": 0.1, "batch_size": 50, "max_steps": 5000})
    diverged(study)
    name, trials = load_trials(url)
    ax = drawers(url, name, trials)["optuna_pareto"]().axes[0]
    assert ax.get_title() == ("Pareto front of study 'pareto_highway_fc_mnist_depth100'\n"
                              "highway_fc, mnist, depth 100, setup=blog")
    trained = trials[trials["best_val_accuracy"] > 0]
    low, high = 100 * trained["best_val_accuracy"].min(), 100 * trained["best_val_accuracy"].max()
    left, right = ax.get_xlim()
    assert low - 0.1 * (high - low) <= left < low and high < right <= high + 0.1 * (high - low)
    assert ax.get_xlabel() == "best val accuracy (%)" and ax.get_ylabel() == "layers used"
    drawn = [tuple(p) for c in ax.collections for p in c.get_offsets()]
    assert len(drawn) == len(trained) and all(x > 0 for x, _ in drawn)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "2 diverged or failed trials (scored 0): not drawn" in legend
    assert all(float(t).is_integer() for t in ax.get_yticks())
    plt.close("all")


def test_an_all_zero_objective_gets_an_integer_axis(tmp_path):
    """Every trial used 0 layers: Optuna's axis ran -0.04 to 0.04 in fractional ticks."""
    from analysis.optuna_figures import drawers

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="pareto_highway_fc_mnist_depth1000", storage=url,
                                directions=["maximize", "maximize"])
    study.set_user_attr(record.STUDY_OBJECTIVES_ATTR, ["best_val_accuracy", "layers_used"])
    study.optimize(lambda t: (0.9 + 0.001 * t.suggest_float("carry_bias", -20.0, -1.0), 0.0),
                   n_trials=5)
    name, trials = load_trials(url)
    ax = drawers(url, name, trials)["optuna_pareto"]().axes[0]
    assert ax.get_ylim() == (-0.5, 1.5) and list(ax.get_yticks()) == [0, 1]
    assert ax.get_title().endswith("\ndepth 1000")  # from the study's name
    plt.close("all")


def test_slices_draw_log_searched_parameters_on_log_axes(tmp_path):
    """Optuna 2.10 gives a log axis to log floats only: depth, tag(log, int(...)), was linear;
    its colour bar of trial numbers had ticks at 0.5, 1.5, ..."""
    from analysis.optuna_figures import drawers

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="deep", storage=url, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial):
        depth = trial.suggest_int("depth", 1, 1000, log=True)
        width = trial.suggest_int("width", 10, 13)
        rate = trial.suggest_float("optimizer.learning_rate", 1e-4, 1.0, log=True)
        return 0.9 - 0.01 * math.log10(depth) - 0.001 * width + 0.01 * math.log10(rate)

    study.optimize(objective, n_trials=4)
    name, trials = load_trials(url)
    fig = drawers(url, name, trials)["optuna_slice"]()
    panels = {ax.get_xlabel(): ax for ax in fig.axes if ax.get_xlabel()}
    depth, width = panels["depth (layers)"], panels["width"]
    assert depth.get_xscale() == "log" and panels["learning rate"].get_xscale() == "log"
    fig.canvas.draw()
    labels = [t.get_text() for t in depth.get_xticklabels()]
    assert labels and all(re.fullmatch(r"\d+", text) for text in labels), labels
    assert width.get_xscale() == "linear"
    assert all(float(t).is_integer() for t in width.get_xticks())
    bar = next(c.colorbar for ax in fig.axes for c in ax.collections if c.colorbar)
    assert bar.ax.get_ylabel() == "trial number"
    assert all(float(t).is_integer() for t in bar.get_ticks())
    assert fig.get_suptitle() == "Slices of study 'deep'"
    plt.close("all")


def test_compared_studies_mark_diverged_trials_and_use_percent(tmp_path):
    """optuna_compared coloured diverged trials (scored 0) by that 0, in the colour of
    chance, and its scale ran 0-1 where the report gives percent."""
    from analysis import optuna_compare
    from analysis.optuna_study import load_study, trials_table

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    for depth in (20, 100):
        diverged(depth_study(url, depth, -2.0), count=1)
    studies = {}
    for name in ("bias_lr_highway_fc_mnist_depth20", "bias_lr_highway_fc_mnist_depth100"):
        study = load_study(url, name)
        studies[name] = (optuna_compare.study_setting(study), trials_table(study))
    figure = optuna_compare.figure(studies)
    panel = figure.axes[0]
    coloured = [c for c in panel.collections if c.get_array() is not None]
    low, high = coloured[0].get_clim()
    assert 50 < low <= high <= 100  # percent, over the trained trials only
    crosses = [c for c in panel.collections if c.get_array() is None and len(c.get_offsets())
               and c.get_facecolors().size and tuple(c.get_facecolors()[0][:3]) == (0.55,) * 3]
    assert sum(len(c.get_offsets()) for c in crosses) == 2
    legend = [t.get_text() for t in panel.get_legend().get_texts()]
    assert "diverged or failed, scored 0 (2 trials)" in legend
    bar = next(ax for ax in figure.axes if ax.get_ylabel() == "best val accuracy (%)")
    assert bar is not None
    plt.close("all")


@pytest.mark.parametrize("biases, verdict", [
    ([-12.171, -12.161], "depth 20: -12.2, depth 100: -12.2: equal at every depth (to the "
                         "precision shown)"),
    ([-3.0, -12.171, -12.161], "depth 20: -3, depth 100: -12.2, depth 1000: -12.2: never less "
                               "negative with depth, but equal at depths 100 and 1000 (to the "
                               "precision shown)"),
    ([-3.0, -6.0, -12.161], "more negative at every deeper depth"),
    ([-12.0, -6.0, -3.04], "less negative at every deeper depth"),
])
def test_the_depth_answer_compares_the_biases_it_prints(biases, verdict):
    """-12.171 then -12.161 printed as -12.2 twice and was called "less negative at every
    deeper depth"."""
    from analysis import optuna_compare

    table = pd.DataFrame({"model": "highway_fc", "depth": [20, 100, 1000][:len(biases)],
                          "best_carry_bias": biases})
    answer = optuna_compare.depth_answer(table)
    assert verdict in answer
    if "equal" in verdict:
        assert "less negative at every" not in answer
