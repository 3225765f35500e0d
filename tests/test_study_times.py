"""analysis.study.study_times: the wall time of run_study.sh's steps from their .times files."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from analysis.study import study_times


def write(folder, name, times: str, log: str = ""):
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.times").write_text(times)
    if log:
        (folder / f"{name}.log").write_text(log)


def stamp(seconds: float) -> str:
    """A Hydra log line's timestamp for Unix time `seconds` (local time, as Hydra writes)."""
    moment = datetime.fromtimestamp(seconds)
    return f"[{moment:%Y-%m-%d %H:%M:%S},{moment.microsecond // 1000:03d}][HYDRA] line"


def test_attempts_add_up_less_pauses_and_killed_ones_end_at_their_last_sign_of_life(tmp_path):
    t0 = 1_800_000_000
    # Attempt 1 was killed: its last alive line (t0+600) and log line (t0+650) bound it;
    # attempt 2 ended normally after a 100 s pause inside it and a pause outside any attempt.
    write(tmp_path, "grid",
          f"start {t0}\nalive {t0 + 600}\nstart {t0 + 1000}\npause {t0 + 1100} {t0 + 1200} x\n"
          f"end {t0 + 1500} status 0\npause {t0 + 3000} {t0 + 3100}\n",
          log=f"{stamp(t0 + 10)}\n{stamp(t0 + 650)}\nno stamp here\n{stamp(t0 + 1400)}\n")
    write(tmp_path, "later", f"start {t0 + 2000}\nend {t0 + 2060} status 2\n")
    steps = study_times.read_steps(tmp_path)
    assert [s.name for s in steps] == ["grid", "later"]  # in the order they first started
    grid = steps[0]
    assert [status for *_, status in grid.attempts] == [study_times.NO_END, "exit 0"]
    assert grid.attempts[0][1] == pytest.approx(t0 + 650)  # the log line, later than alive
    assert grid.paused_seconds == 100
    assert grid.wall_seconds == pytest.approx(650 + 500 - 100)
    table = study_times.markdown(steps)
    assert "| grid | 2 | 17.5 | 1.7 | exit 0 |" in table
    assert "| later | 1 | 1.0 | 0.0 | exit 2 |" in table
    assert "| all | 3 | 18.5 | 1.7 |  |" in table


def test_a_step_still_running_counts_up_to_now_at_most(tmp_path):
    now = time.time()
    write(tmp_path, "running", f"start {now - 300}\nalive {now - 120}\nalive {now - 60}\n")
    (step,) = study_times.read_steps(tmp_path)
    assert step.last_status == study_times.NO_END
    assert step.wall_seconds == pytest.approx(240)


@pytest.mark.parametrize("times, message", [
    ("end 5 status 0\n", "an end line without a start line"),
    ("start soon\n", "is not a start, end, alive or pause line with Unix seconds"),
    ("begin 5\n", "'begin 5' is not a start, end, alive or pause line"),
])
def test_a_bad_times_file_ends_in_one_sentence_naming_the_line(tmp_path, capsys, times, message):
    write(tmp_path, "step", times)
    assert study_times.main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert message in err and "step.times:1" in err and err.count("\n") == 1


def test_a_folder_without_times_files_is_refused(tmp_path, capsys):
    assert study_times.main([str(tmp_path / "missing")]) == 1
    assert "is not a folder" in capsys.readouterr().err
    assert study_times.main([str(tmp_path)]) == 1
    assert "holds no <step>.times file" in capsys.readouterr().err
