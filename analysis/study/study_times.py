"""`python -m analysis.study.study_times [LOGS]`: the wall time of each step of
docs/study/run_study.sh.

The script appends to `LOGS/<step>.times` (default outputs/study_logs) a `start T` line when
a step begins and `end T status S` when it ends (Unix seconds); a study stopped midway and
rerun adds more attempts, `alive T` lines while it runs (every minute), and
`pause T0 T1 ...` lines note stretches in which the step's processes were stopped on
purpose (SIGSTOP). A step's wall time is the sum over its attempts
less those pauses. An attempt whose process was killed has no end line: it is counted up to
its last `alive` line or the last timestamped line of the step's log (`<step>.log`,
Hydra's "[YYYY-mm-dd HH:MM:SS,ms]" lines, local time) before the next attempt, whichever
is later, and marked "no end line" (killed, or still running if it is the last). Prints a
markdown table, one row per step in the order they first started, and the total. Bad input ends in one sentence on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from analysis.markdown import table

DEFAULT_LOGS = Path("outputs") / "study_logs"
LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d+)\]")
NO_END = "no end line"


class TimesError(ValueError):
    """A times file that cannot be read; the message names it and the line."""


@dataclass
class StepTimes:
    name: str
    attempts: list[tuple[float, float, str]] = field(default_factory=list)  # start, end, status
    pauses: list[tuple[float, float]] = field(default_factory=list)

    @property
    def first_start(self) -> float:
        return self.attempts[0][0] if self.attempts else float("inf")

    @property
    def paused_seconds(self) -> float:
        """Pause time that falls inside an attempt (a pause outside every attempt costs none)."""
        return sum(max(0.0, min(end, p1) - max(start, p0))
                   for start, end, _ in self.attempts for p0, p1 in self.pauses)

    @property
    def wall_seconds(self) -> float:
        return sum(end - start for start, end, _ in self.attempts) - self.paused_seconds

    @property
    def last_status(self) -> str:
        return self.attempts[-1][2] if self.attempts else "never started"


def log_times(log: Path) -> list[float]:
    """Unix times of the log's timestamped lines (Hydra's format, local time)."""
    if not log.exists():
        return []
    times = []
    for line in log.read_text(errors="replace").splitlines():
        match = LOG_TIME.match(line)
        if match:
            stamp = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S")
            times.append(stamp.timestamp() + int(match[2]) / 10 ** len(match[2]))
    return times


def read_step(times_file: Path) -> StepTimes:
    """One step's attempts and pauses from its .times file (see the module docstring)."""
    step = StepTimes(times_file.stem)
    stamps = log_times(times_file.with_suffix(".log"))
    open_start = None
    alive: list[float] = []

    def close_open(next_start: float) -> None:
        """An attempt without an end line: it lasted until its last log line."""
        inside = [t for t in stamps + alive if open_start <= t < next_start]
        step.attempts.append((open_start, max(inside, default=open_start), NO_END))

    for number, line in enumerate(times_file.read_text().splitlines(), 1):
        words = line.split()
        if not words:
            continue
        try:
            if words[0] == "start":
                if open_start is not None:
                    close_open(float(words[1]))
                open_start = float(words[1])
            elif words[0] == "end":
                if open_start is None:
                    raise TimesError(f"{times_file}:{number}: an end line without a start "
                                     "line before it")
                status = words[3] if len(words) > 3 else "?"
                step.attempts.append((open_start, float(words[1]),
                                      f"exit {status}" if status.isdigit() else status))
                open_start = None
            elif words[0] == "pause":
                step.pauses.append((float(words[1]), float(words[2])))
            elif words[0] == "alive":
                alive.append(float(words[1]))
            else:
                raise TimesError(f"{times_file}:{number}: {line!r} is not a start, end, "
                                 "alive or pause line")
        except (IndexError, ValueError) as error:
            if isinstance(error, TimesError):
                raise
            raise TimesError(f"{times_file}:{number}: {line!r} is not a start, end, alive "
                             "or pause line with Unix seconds") from None
    if open_start is not None:
        close_open(float("inf"))
    return step


def read_steps(logs: Path) -> list[StepTimes]:
    if not logs.is_dir():
        raise TimesError(f"{logs} is not a folder: give the study's log folder "
                         f"(run_study.sh writes {DEFAULT_LOGS}).")
    steps = [read_step(path) for path in sorted(logs.glob("*.times"))]
    if not steps:
        raise TimesError(f"{logs} holds no <step>.times file: has run_study.sh run here?")
    return sorted(steps, key=lambda s: (s.first_start, s.name))


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f}"


def markdown(steps: list[StepTimes]) -> str:
    rows = [[step.name, len(step.attempts), _minutes(step.wall_seconds),
             _minutes(step.paused_seconds), step.last_status] for step in steps]
    rows.append(["all", sum(len(s.attempts) for s in steps),
                 _minutes(sum(s.wall_seconds for s in steps)),
                 _minutes(sum(s.paused_seconds for s in steps)), ""])
    header = ["step", "attempts", "wall time, min", "paused, min", "last attempt"]
    return table(header, rows).rstrip("\n")


def parser() -> argparse.ArgumentParser:
    made = argparse.ArgumentParser(prog="python -m analysis.study.study_times",
                                   description=__doc__.split("\n\n")[0])
    made.add_argument("logs", nargs="?", type=Path, default=DEFAULT_LOGS,
                      help=f"run_study.sh's log folder (default {DEFAULT_LOGS})")
    return made


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        print(markdown(read_steps(args.logs)))
    except (TimesError, OSError) as error:
        print(f"study_times: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
