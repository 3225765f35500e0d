"""`python -m analysis.study_state STORAGE STUDY (left TOTAL | best)`: an Optuna study's state
for scripts.

- `left TOTAL` prints how many of TOTAL trials the study still needs (finished trials count,
  failed or interrupted ones do not), so that a script can rerun a search and have it finish
  its budget instead of adding a new one (the sweeper asks `n_trials` more on every run);
- `best` prints the best finished trial's parameters as command-line overrides
  (`carry_bias=-3.2 optimizer.learning_rate=0.04`), to train that setting again.
Bad input ends in one sentence on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import sys

from analysis.collect import AnalysisError
from analysis.optuna_study import _check_sqlite_file, _first_line, shown


def finished_trials(storage: str, study: str) -> list:
    """The study's COMPLETE trials; none when the study does not exist yet."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not storage.startswith("sqlite") or _sqlite_exists(storage):
        try:
            names = {s.study_name for s in optuna.get_all_study_summaries(storage=storage)}
        except Exception as error:  # noqa: BLE001 - any storage error is the user's URL
            raise AnalysisError(f"Cannot read Optuna storage {shown(storage)!r}: "
                                f"{_first_line(error, storage)}.") from None
        if study in names:
            loaded = optuna.load_study(study_name=study, storage=storage)
            return loaded.get_trials(deepcopy=False,
                                     states=(optuna.trial.TrialState.COMPLETE,))
    return []


def _sqlite_exists(storage: str) -> bool:
    try:
        _check_sqlite_file(storage)
    except AnalysisError:
        return False
    return True


def trials_left(storage: str, study: str, total: int) -> int:
    return max(0, total - len(finished_trials(storage, study)))


def best_overrides(storage: str, study: str) -> str:
    trials = [t for t in finished_trials(storage, study) if t.value is not None]
    if not trials:
        raise AnalysisError(f"Optuna study {study!r} in {shown(storage)!r} has no finished "
                            "trial with a value yet.")
    best = max(trials, key=lambda t: t.value)
    return " ".join(f"{name}={value!r}" for name, value in sorted(best.params.items()))


def parser() -> argparse.ArgumentParser:
    made = argparse.ArgumentParser(prog="python -m analysis.study_state",
                                   description=__doc__.split("\n\n")[0])
    made.add_argument("storage", help="Optuna storage URL, e.g. sqlite:///outputs/optuna.db")
    made.add_argument("study")
    made.add_argument("what", choices=("left", "best"))
    made.add_argument("total", nargs="?", type=int,
                      help="with `left`: the study's budget of trials")
    return made


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.what == "left":
            if args.total is None or args.total < 1:
                raise AnalysisError(f"`left` needs the study's budget of trials, a positive "
                                    f"integer (got {args.total}).")
            print(trials_left(args.storage, args.study, args.total))
        else:
            print(best_overrides(args.storage, args.study))
    except AnalysisError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
