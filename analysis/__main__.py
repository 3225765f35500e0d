"""`python -m analysis [FOLDER ...]`: run records -> runs.csv, figures/, report.md.

FOLDERs are sweep or run folders, searched recursively for run records; with none (and no
--optuna), the newest sweep under outputs/ that holds a run record (a grid or an Optuna
search), else the newest run, and the first line printed says which. Bad input ends in one
sentence on stderr and exit code 1 (2 for a bad option); never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from analysis.collect import AnalysisError, collect
from highway_study.record import SUMMARY_FILE
from analysis.select import data_sets_warning, parse_where, pooled, pooled_warning, select

FORMATS = ("png", "svg", "pdf")
# Files that only a sweep's root folder holds: Hydra's basic sweeper (grids, named
# experiments) writes multirun.yaml; the Optuna sweeper writes none, but the project's
# progress callback writes progress.jsonl for every sweep and Optuna optimization_results.yaml
# at the end. The newest of them dates the sweep.
SWEEP_MARKERS = ("multirun.yaml", "progress.jsonl", "optimization_results.yaml")


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        _check_fraction("--threshold", args.threshold)
        _check_fraction("--gate-threshold", args.gate_threshold)
        args.where = [parse_where(text) for text in args.where or []]
        # With only --optuna, only the study is analysed.
        folders = args.folders
        if not folders and not args.optuna:
            folders, picked = _default_folders()
            print(picked)
        out = Path(args.out) if args.out else _default_out(folders)
        message = analyse(folders, out, args)
    except AnalysisError as error:
        print(error, file=sys.stderr)
        return 1
    print(message)
    return 0


def analyse(folders, out: Path, args, optuna=None) -> str:
    """Collect, draw, write; return the one line that tells where everything went. `optuna`:
    the (name, trials table) of a study already loaded, instead of the one --study names."""
    from analysis import plots, report, tables  # heavy imports only after the checks
    from analysis.study import depth_task_report, needs_depth_report, paper_fig1

    names = _studies(args) if args.optuna and optuna is None else []
    if len(names) > 1:
        if folders:
            raise AnalysisError(
                f"--study names {len(names)} studies ({', '.join(names)}): compare several "
                "studies without FOLDERs, or give one study beside the folders.")
        return analyse_studies(names, out, args)
    collection = collect(folders, args.threshold, args.gate_threshold) if folders else None
    if collection is not None and args.where:
        collection = select(collection, args.where)
    if collection is not None:
        collection = _step_resolution(collection, args, tables)
    if names:
        from analysis.optuna_study import load_trials

        optuna = load_trials(args.optuna, names[0])
    if collection is not None and collection.skipped:
        _warn_skipped(collection.skipped)
    if collection is not None:
        for warning in (data_sets_warning(collection.runs), pooled_warning(pooled(collection))):
            if warning:
                print(f"warning: {warning}", file=sys.stderr)
    drawn = _with_depth(collection)  # figures place runs by depth: those without one are left out
    drawers = _drawers(drawn, optuna, args, plots, tables)
    if drawn is not None:
        drawers.update(_step_drawers(drawn, args, tables))
    study = needs_depth_report.prepare(collection, args.compare)  # None without tent runs
    if study is not None:
        drawers.update(needs_depth_report.drawers(study))
        if study.warning:
            print(f"warning: --compare {study.other_name}: {study.warning}", file=sys.stderr)
    depth_task = depth_task_report.prepare(collection)  # None without depth-task runs
    if depth_task is not None:
        drawers.update(depth_task_report.drawers(depth_task))
    figure1 = paper_fig1.prepare(collection)  # None without the paper's Figure 1 trials
    if figure1 is not None and not figure1.best.empty:
        drawers[paper_fig1.FIGURE] = lambda: paper_fig1.draw(figure1)
    figures_dir = out / "figures"
    try:
        figures_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise AnalysisError(
            f"Cannot write to output folder {str(out)!r}: {error.strerror}.") from None
    figures = {}
    for name, draw in drawers.items():
        fig = draw()
        path = figures_dir / f"{name}.{args.format}"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plots.plt.close(fig)
        figures[name] = path.relative_to(out).as_posix()
    if optuna is not None:
        optuna[1].to_csv(out / "optuna_trials.csv", index=False)
    if collection is None:
        (out / "report.md").write_text(
            report.optuna_section(*optuna, figures) + "\n", encoding="utf-8")
        return f"Analysed Optuna study {optuna[0]!r}: {out / 'report.md'}"
    collection.runs.to_csv(out / "runs.csv", index=False)
    report.write_report(collection, figures, out, optuna)
    section = ""
    if study is not None:
        needs_depth_report.write(study, figures, out)
        section = f", {out / needs_depth_report.SECTION_FILE}"
    if depth_task is not None:
        depth_task_report.write(depth_task, figures, out)
        section += f", {out / depth_task_report.SECTION_FILE}"
    if figure1 is not None:
        paper_fig1.write(figure1, figures, out)
        section += f", {out / paper_fig1.SECTION_FILE}"
    skipped = f", {len(collection.skipped)} skipped" if collection.skipped else ""
    count = len(collection.runs)
    return (f"Analysed {count} run{'' if count == 1 else 's'}{skipped}: {out / 'runs.csv'}, "
            f"{len(figures)} figures in {figures_dir}, {out / 'report.md'}{section}")


def _studies(args) -> list:
    """The study names --study gives (names or shell patterns), or [None]: the newest."""
    if not args.study:
        return [None]
    from analysis.optuna_compare import matching_studies
    from analysis.optuna_study import shown, study_names

    return matching_studies(study_names(args.optuna), args.study, shown(args.optuna))


def analyse_studies(names, out: Path, args) -> str:
    """Each study analysed alone into out/<study>/, then out/report.md comparing them."""
    from analysis import optuna_compare
    from analysis.optuna_study import load_study, trials_table

    studies = {}
    for name in names:
        study = load_study(args.optuna, name)
        trials = trials_table(study)  # its importances are computed here, once
        analyse([], out / name, args, optuna=(name, trials))
        studies[name] = (optuna_compare.study_setting(study), trials)
    table = optuna_compare.comparison(studies)
    figures = {}
    drawn = optuna_compare.figure(studies)
    if drawn is not None:
        path = out / "figures" / f"{optuna_compare.FIGURE}.{args.format}"
        path.parent.mkdir(parents=True, exist_ok=True)
        drawn.savefig(path, dpi=120, bbox_inches="tight")
        optuna_compare.plt.close(drawn)
        figures[optuna_compare.FIGURE] = path.relative_to(out).as_posix()
    table.to_csv(out / "optuna_studies.csv", index=False)
    links = {name: f"{name}/report.md" for name in names}
    (out / "report.md").write_text(optuna_compare.section(table, figures, links),
                                   encoding="utf-8")
    return (f"Analysed {len(names)} Optuna studies: {out / 'report.md'} (compared), each "
            f"study's own report in {out}/<study>/")


def _with_depth(collection):
    """The collection without the runs whose config has no usable depth (missing, not a
    whole number), which no figure can place, and one warning naming them; None when no run
    is left (or no collection)."""
    if collection is None:
        return None
    runs = collection.runs
    lost = runs[runs["depth"].isna()]
    if lost.empty:
        return collection
    names = ", ".join(lost["run"].astype(str).head(5)) + (
        f" and {len(lost) - 5} more" if len(lost) > 5 else "")
    print(f"warning: {len(lost)} of {len(runs)} runs have no usable depth in their config "
          f"({names}): they are in runs.csv and the report but in no figure; give each run "
          "a whole number as depth.", file=sys.stderr)
    if len(lost) == len(runs):
        return None
    kept = set(runs.loc[runs["depth"].notna(), "run"])

    def only(frame):
        return frame[frame["run"].isin(kept)].reset_index(drop=True)

    return dataclasses.replace(
        collection, runs=only(runs), curves=only(collection.curves),
        points=only(collection.points), gate_points=only(collection.gate_points),
        gates=only(collection.gates), lesions=only(collection.lesions),
        gate_run=collection.gate_run if collection.gate_run in kept else None)


def _drawers(c, optuna, args, plots, tables) -> dict:
    """Figure name -> a function drawing it, only for figures the data can fill."""
    drawers = {}
    if c is not None:
        runs = c.runs
        drawers["accuracy_heatmap"] = lambda: plots.accuracy_heatmap(runs)
        drawers["epochs_heatmap"] = lambda: plots.epochs_heatmap(runs, c.threshold)
        if (runs["status"] == "completed").any():
            drawers["accuracy_vs_depth"] = lambda: plots.accuracy_vs_depth(runs)
        _check_curve_depths(args.curve_depths, runs)
        if "val_accuracy" in c.curves and c.curves["val_accuracy"].notna().any():
            drawers["learning_curves"] = lambda: plots.learning_curves(
                runs, c.curves, c.threshold, args.curve_depths)
        gates = tables.highway_gates(c)
        if not gates.empty:
            drawers["gate_activity"] = lambda: plots.gate_heatmap(gates)
            drawers["effective_depth"] = lambda: plots.effective_depth(runs, c.gate_threshold)
        lesions = tables.lesion_table(c)
        lesions = lesions[tables.is_gated(lesions["model"])]
        if not lesions.empty:
            drawers["lesion"] = lambda: plots.lesion_figure(lesions)
    if optuna is not None:
        from analysis.optuna_figures import drawers as optuna_drawers

        drawers.update(optuna_drawers(args.optuna, *optuna))
    return drawers


def _step_resolution(collection, args, tables):
    """The collection with accuracy_after_<budget> columns, the budgets they use and the
    run whose gate dynamics are drawn (checked against --gate-run)."""
    budgets = args.budgets or tables.default_budgets(collection.runs)
    runs = tables.with_budgets(collection.runs, collection.points, budgets)
    if args.gate_run and args.gate_run not in set(collection.gate_points["run"]):
        raise AnalysisError(f"--gate-run {args.gate_run!r} is not a gated run with a "
                            "step-resolution curve: use a name from the run column of runs.csv.")
    gate_run = args.gate_run or tables.gate_run(runs, collection.gate_points)
    return dataclasses.replace(collection, runs=runs, budgets=list(budgets), gate_run=gate_run)


def _step_drawers(c, args, tables) -> dict:
    """The step-resolution figures the runs' curve.jsonl files can fill."""
    from analysis import step_plots

    runs, drawers = c.runs, {}
    if runs["curve_last_step"].notna().any():
        drawers["steps_heatmap"] = lambda: step_plots.steps_heatmap(runs, c.threshold)
        if c.budgets:
            drawers["budget_heatmaps"] = lambda: step_plots.budget_heatmaps(runs, c.budgets)
        if c.points["val_accuracy"].notna().any():
            drawers["step_curves"] = lambda: step_plots.step_curves(
                runs, c.points, c.threshold, args.curve_depths)
    gated = runs[tables.is_gated(runs["model"])]
    if gated["gate_shift"].notna().any():
        drawers["gate_shift_heatmap"] = lambda: step_plots.gate_shift_heatmap(runs)
    if c.gate_run is not None:
        row = runs[runs["run"] == c.gate_run].iloc[0]
        title = (f"Gate dynamics of {row['model']}, depth {row['depth']}, carry_bias "
                 f"{row['carry_bias']:g}, seed {row['seed']}")
        drawers["gate_dynamics"] = lambda: step_plots.gate_dynamics(
            c.gate_points, c.gate_run, title)
    return drawers


def _check_curve_depths(depths, runs) -> None:
    present = sorted(int(d) for d in runs["depth"].dropna().unique())
    absent = [d for d in depths or [] if d not in present]
    if absent:
        raise AnalysisError(
            f"--curve-depths {','.join(map(str, absent))} not among the runs' depths: use some "
            f"of {','.join(map(str, present))}.")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description="Turn highway_study run records into runs.csv, figures/ and report.md.")
    parser.add_argument("folders", nargs="*", metavar="FOLDER",
                        help="sweep or run folders (default: the newest sweep under outputs/)")
    parser.add_argument("--out", help="output folder (default: FOLDER/analysis for one "
                                      "folder, else outputs/analysis)")
    parser.add_argument("--threshold", type=float, default=0.9,
                        help="validation accuracy that counts as converged (default 0.9)")
    parser.add_argument("--gate-threshold", type=float, default=0.1,
                        help="mean transform-gate activity above which a layer counts as "
                             "used, for the effective depth (default 0.1)")
    parser.add_argument("--format", choices=FORMATS, default="png", help="figure file format")
    parser.add_argument("--curve-depths", type=_depth_list, default=None,
                        help="depths whose learning curves are drawn, e.g. 1,20,50 "
                             "(default: up to 4 spread over the depths present)")
    parser.add_argument("--budgets", type=_step_list, default=None,
                        help="step budgets of the accuracy small multiples, e.g. 250,1000,5000 "
                             "(default: those the runs reach, and the longest run's length)")
    parser.add_argument("--gate-run", metavar="RUN",
                        help="run (its name in runs.csv) whose gate dynamics are drawn "
                             "(default: the deepest gated run, best test accuracy)")
    parser.add_argument("--optuna", metavar="URL",
                        help="Optuna storage to plot, e.g. sqlite:///outputs/optuna.db")
    parser.add_argument("--study", nargs="+", metavar="STUDY",
                        help="Optuna study name (default: the newest in the storage); several "
                             "names or shell patterns ('bias_lr_*') compare those studies")
    parser.add_argument("--where", action="append", metavar="KEY=VALUE",
                        help="analyse only the runs whose config has KEY=VALUE, e.g. "
                             "loss_reduction=sum (repeatable: all must hold)")
    parser.add_argument("--compare", metavar="FOLDER", nargs="+",
                        help="the MNIST runs set beside the data=tent runs in needs_depth.md: "
                             "the depth x carry-bias grid and the residual nets (sweep "
                             "folders or runs.csv files)")
    return parser


def _depth_list(text: str) -> list[int]:
    try:
        depths = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of depths, e.g. 1,20,50") from None
    if not depths:
        raise argparse.ArgumentTypeError("give at least one depth, e.g. 1,20,50")
    return depths


def _step_list(text: str) -> list[int]:
    try:
        steps = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of steps, e.g. 250,1000,5000") from None
    if not steps or steps[0] < 1:
        raise argparse.ArgumentTypeError("give step budgets >= 1, e.g. 250,1000,5000")
    return steps


def _check_fraction(option: str, value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise AnalysisError(f"{option}={value:g} is not allowed: use a fraction in (0, 1], "
                            "e.g. 0.9 for 90%.")


def _default_folders(root: Path = Path("outputs")) -> tuple[list[Path], str]:
    """([the newest sweep under root that holds a run record], the line saying so), else the
    newest run. A sweep is dated by its newest marker file, so a grid and an Optuna search
    compete on equal terms."""
    written = {}
    for name in SWEEP_MARKERS:
        for marker in root.glob(f"**/{name}"):
            folder = marker.parent
            written[folder] = max(written.get(folder, 0.0), marker.stat().st_mtime)
    for folder in sorted(written, key=written.get, reverse=True):
        if next(folder.glob(f"**/{SUMMARY_FILE}"), None) is not None:
            kind = "a grid" if (folder / "multirun.yaml").exists() else "an Optuna search"
            return [folder], (f"No folder given: analysing {folder}, the newest sweep under "
                              f"{root}/ ({kind}); pass a folder to analyse another.")
    runs = list(root.glob(f"**/{SUMMARY_FILE}"))
    if runs:
        folder = max(runs, key=lambda p: p.stat().st_mtime).parent
        return [folder], (f"No folder given and no sweep under {root}/: analysing the newest "
                          f"run, {folder}; pass a folder to analyse another.")
    raise AnalysisError("No folder given and no sweep or run found under outputs/: pass a "
                        "folder, e.g. python -m analysis outputs/sweeps/<date>/<time>.")


def _default_out(folders) -> Path:
    return Path(folders[0]) / "analysis" if len(folders) == 1 else Path("outputs/analysis")


def _warn_skipped(skipped) -> None:
    lines = "\n".join(f"  {path}: {why}" for path, why in skipped)
    print(f"warning: skipped {len(skipped)} folders without a usable run record:\n{lines}",
          file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
