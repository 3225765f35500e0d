"""The documented commands do what the pages say: a guard against docs drifting from the code.

Every `python -m highway_study ...`, `python -m analysis ...` and speed-tool command in
README.md, docs/*.md, docs/study/*.md and docs/study/run_study.sh is extracted and checked
without training: a Hydra command is composed job by job as its sweep would launch it (the
experiment's own grid included) and every job's config is validated, as the CLI does first;
an Optuna search is composed with its fixed settings and its searched keys must exist; the
analysis and benchmark command lines are parsed by their own argument parsers, and every
option the pages name must exist. Commands that need MNIST or a Slurm cluster are composed
too, and must say so where they are written (HIGHWAY_STUDY_DATA=..., data.path=..., or the
words "needs MNIST" / "needs Slurm" on the line, in the code block above it or in the
paragraph that introduces the block).

The same file checks that docs/study/run_study.sh shows its steps and stops at the first
failed one.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from compose import compose_multirun
from conftest import REPO

PAGES = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md"),
                *(REPO / "docs" / "study").glob("*.md"), REPO / "docs" / "study" / "run_study.sh"])
# docs/reliability.md lists bad input on purpose (each row's outcome is checked by the test
# that declares it, tests/faults.py), so its commands are not expected to compose.
COMMAND_PAGES = [page for page in PAGES if page.name != "reliability.md"]
COMMAND = re.compile(r"(?:python3?|\$PY) -m ((?:highway_study|analysis)(?:\.\w+)*)\b(.*)")
NEEDS_MNIST = re.compile(r"needs MNIST|HIGHWAY_STUDY_DATA=|data\.path=", re.IGNORECASE)
NEEDS_SLURM = re.compile(r"needs Slurm", re.IGNORECASE)
# Names that only point at the project's own places on a development machine.
NOT_FOR_READERS = re.compile(r"\bIssue \d+\b|device tool|search tool|this session|NOTES\.md|"
                             r"/work/", re.IGNORECASE)


@dataclass
class Documented:
    page: str
    line: int
    module: str  # highway_study, highway_study.bench.benchmark, analysis, ...
    args: list[str]
    context: str  # the command's own line(s), and the block or paragraph that introduces it

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: python -m {self.module} {' '.join(self.args)}"


def logical_lines(text: str) -> list[tuple[int, str, bool, str]]:
    """(line number, text with backslash continuations joined, inside a code block?, what
    introduces it: for a code line the block above it and the paragraph before the block, for
    a prose line the paragraph so far)."""
    out, fenced, block, paragraph, blank = [], False, [], [], True
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start, line = i + 1, lines[i]
        while line.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line.rstrip()[:-1] + " " + lines[i].strip()
        # An inline code span that goes on on the next line of its paragraph.
        while (not fenced and line.count("`") % 2 and not line.lstrip().startswith("```")
               and i + 1 < len(lines) and lines[i + 1].strip()):
            i += 1
            line = line + " " + lines[i].strip()
        i += 1
        if line.strip().startswith("```"):
            fenced = not fenced
            block = list(paragraph) if fenced else []
            continue
        indented = line.startswith("    ") and not line.lstrip().startswith(("-", "|", "*"))
        in_code = fenced or indented
        if in_code:
            if not fenced and not block:
                block = list(paragraph)
            out.append((start, line, True, "\n".join(block)))
            block.append(line)
        else:
            out.append((start, line, False, "" if blank else "\n".join(paragraph)))
            block = []
            if line.strip():  # a blank line ends a paragraph; the next prose line starts one
                paragraph = [line] if blank else paragraph + [line]
            blank = not line.strip()
    return out


def documented_commands() -> list[Documented]:
    found = []
    for page in COMMAND_PAGES:
        text = page.read_text(encoding="utf-8")
        shell = page.suffix == ".sh"
        if shell:
            text = text.replace("$PAR", "hydra/launcher=joblib hydra.launcher.n_jobs=2")
            text = text.replace("$POP", "hydra/launcher=population")
            # A loop's variable and a study's best setting, as the script fills them in.
            text = text.replace("$depth", "50").replace(
                "$best", "carry_bias=-2.5 optimizer.learning_rate=0.05")
            header = "\n".join(line for line in text.splitlines()[:12] if line.startswith("#"))
        for number, line, in_code, above in logical_lines(text):
            if shell:
                if line.lstrip().startswith("#"):
                    continue
                above = header  # the script's opening comment speaks for every command
            pieces = [line] if (in_code or shell) else re.findall(r"`([^`]*)`", line)
            for piece in pieces:
                piece = re.sub(r"<[^>]+>", "PLACEHOLDER", piece)  # `python -m analysis <dir>`
                for match in COMMAND.finditer(piece):
                    rest = re.split(r"\s#|;|&&|\||>", match.group(2))[0]
                    rest = re.sub(r"\$\([^)]*\)|\$\$", "X", rest)  # what the shell expands
                    found.append(Documented(page.relative_to(REPO).as_posix(), number,
                                            match.group(1), shlex.split(rest),
                                            line + "\n" + above))
    return found


COMMANDS = documented_commands()


def by_module(*modules):
    chosen = [c for c in COMMANDS if c.module in modules]
    return pytest.mark.parametrize("command", chosen, ids=[str(c) for c in chosen])


def test_the_pages_hold_the_commands_this_guard_checks():
    modules = {c.module for c in COMMANDS}
    assert {"highway_study", "analysis", "highway_study.bench.benchmark",
            "highway_study.bench.stack", "highway_study.runtime.storage",
            "analysis.study.study_times", "analysis.study_state"} <= modules
    pages = {c.page for c in COMMANDS}
    assert {"README.md", "docs/sweeps.md", "docs/analysis.md", "docs/conv.md",
            "docs/study/report.md", "docs/study/run_study.sh"} <= pages


# --- python -m highway_study: composed job by job, validated, marked ---------------------------

def jobs_of(overrides: list[str]) -> tuple[object, list[list[str]]]:
    """(the sweep's starting config, the override list of every job it launches) for a grid;
    an Optuna search gives its starting config and one job of its fixed settings."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    start = compose_multirun(*overrides)
    parser = OverridesParser.create()
    task = [o for o in overrides if not o.startswith(("hydra.", "hydra/"))]
    if "optuna" in str(start.hydra.sweeper.get("_target_", "")):
        searched = {o.key_or_group for o in parser.parse_overrides(
            [f"{k}={v}" for k, v in start.hydra.sweeper.params.items()])}
        searched |= {o.key_or_group for o in parser.parse_overrides(task) if o.is_sweep_override()}
        for key in searched:
            assert OmegaConf.select(start, key) is not None, f"the search names no key {key}"
        fixed = [o.input_line for o in parser.parse_overrides(task) if not o.is_sweep_override()]
        return start, [fixed]
    params = [f"{k}={v}" for k, v in (start.hydra.sweeper.get("params") or {}).items()]
    jobs = BasicSweeper.split_arguments(parser.parse_overrides(params + task), None)[0]
    return start, jobs


GROUPS = {path.name for path in (REPO / "conf").iterdir() if path.is_dir()}


@functools.lru_cache(maxsize=None)
def composed(overrides: tuple[str, ...]):
    """The config of these group choices and hydra overrides (composed once per choice set)."""
    from hydra import compose, initialize_config_dir

    from highway_study.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def job_config(hydra_overrides: list[str], job: list[str]):
    """One job's config, as Hydra composes it: its group choices compose (cached), its values
    are set on top, as Hydra applies command-line values after the defaults list."""
    parsed = OverridesParser.create().parse_overrides(list(job))
    groups = tuple(hydra_overrides) + tuple(o.input_line for o in parsed if o.key_or_group in GROUPS)
    cfg = copy.deepcopy(composed(groups))
    for override in parsed:
        if override.key_or_group not in GROUPS:
            OmegaConf.update(cfg, override.key_or_group, override.value(), merge=False)
    return cfg


@by_module("highway_study")
def test_documented_run_and_sweep_commands_compose_and_validate(command):
    from highway_study.config import validate

    overrides = [arg for arg in command.args
                 if arg not in ("-m", "--multirun") and not arg.startswith(("[", "..."))]
    start, jobs = jobs_of(overrides)
    hydra_overrides = [o for o in overrides if o.startswith(("hydra.", "hydra/"))]
    data = set()
    for job in jobs:
        cfg = job_config(hydra_overrides, job)
        validate(cfg)  # what the CLI does before anything runs
        data.add(cfg.data.name)
    if "mnist" in data:
        assert NEEDS_MNIST.search(command.context), f"{command} needs MNIST and does not say so"
    if str(start.hydra.launcher.get("_target_", "")).endswith("SlurmLauncher"):
        assert NEEDS_SLURM.search(command.context), f"{command} needs Slurm and does not say so"


@by_module("highway_study.runtime.storage")
def test_documented_storage_commands_name_one_study(command):
    assert command.args[1:] == [] or set(command.args[1:]) <= {"minimize", "maximize"}, command


# --- python -m analysis and the speed tools: their own parsers ---------------------------------

def analysis_options() -> set[str]:
    from analysis.__main__ import _parser

    return {o for action in _parser()._actions for o in action.option_strings}


@by_module("analysis")
def test_documented_analysis_commands_parse(command):
    from analysis.__main__ import _parser

    if any(arg.startswith("[") for arg in command.args):  # a synopsis: the options must exist
        named = {re.sub(r"[^\w-]", "", arg) for arg in command.args if "--" in arg}
        assert named <= analysis_options(), command
    else:
        _parser().parse_args(command.args)  # argparse exits on an unknown option or bad value


@by_module("analysis.study.study_times", "analysis.study_state")
def test_documented_study_script_commands_parse(command):
    """The study's helpers (run_study.sh's Optuna state, the wall-time table): their own
    parsers take the documented arguments (shell variables stand for values)."""
    from analysis import study_state
    from analysis.study import study_times

    parser = study_times.parser() if command.module.endswith("times") else study_state.parser()
    args = [arg.strip('")') for arg in command.args]
    parser.parse_args(["1" if arg.startswith("$") else arg for arg in args])


@by_module("highway_study.bench.benchmark", "highway_study.bench.stack")
def test_documented_speed_commands_parse(command):
    from highway_study.bench import benchmark, stack

    parse = benchmark.parse_args if command.module.endswith("benchmark") else stack.parse_args
    if not any(arg.startswith("[") for arg in command.args):
        parse(command.args)


@pytest.mark.parametrize("page, section, options", [
    ("docs/usage.md", "## Analysis", "analysis"), ("docs/analysis.md", None, "analysis"),
    ("docs/benchmark.md", None, "speed")])
def test_every_option_the_pages_name_exists(page, section, options):
    text = (REPO / page).read_text(encoding="utf-8")
    if section:
        text = text.split(section, 1)[1].split("\n## ", 1)[0]
    # Options are hyphenated words; `--xla_cpu_...` flags belong to XLA, not to these tools.
    named = set(re.findall(r"`(--[a-z][a-z-]*)(?![\w])[^`]*`", text))
    known = analysis_options() if options == "analysis" else _speed_options()
    assert named and named <= known, sorted(named - known)


def _speed_options() -> set[str]:
    """Every option of the speed tools, read from their --help."""
    options = set()
    for module in ("highway_study.bench.benchmark", "highway_study.bench.stack",
                   "highway_study.bench.sweep", "highway_study.bench.population_parts"):
        result = subprocess.run([os.sys.executable, "-m", module, "--help"], capture_output=True,
                                text=True, timeout=60, cwd=REPO)
        options |= set(re.findall(r"--[\w-]+", result.stdout))
    return options


# --- the pages speak to a reader outside the project -------------------------------------------

@pytest.mark.parametrize("page", PAGES + sorted((REPO / "conf").rglob("*.yaml")),
                         ids=lambda p: p.relative_to(REPO).as_posix())
def test_pages_name_nothing_a_reader_does_not_have(page):
    """No project-internal names (issue numbers, the tools or machine paths the authors
    worked with, notes that are not in the repository), in the pages or the configs' comments."""
    text = page.read_text(encoding="utf-8")
    hits = [f"{number}: {line.strip()}" for number, line in enumerate(text.splitlines(), 1)
            if NOT_FOR_READERS.search(line)]
    assert not hits, hits


# --- docs/study/run_study.sh -----------------------------------------------------------------

def run_study_with(tmp_path, fake_python: str, *args: str,
                   **env: str) -> subprocess.CompletedProcess:
    """docs/study/run_study.sh (with args, and env added) run in tmp_path with `fake_python`
    (a bash script) as $PYTHON."""
    (tmp_path / "docs" / "study").mkdir(parents=True)
    shutil.copy(REPO / "docs" / "study" / "run_study.sh", tmp_path / "docs" / "study")
    fake = tmp_path / "fake_python"
    fake.write_text(fake_python)
    fake.chmod(0o755)
    return subprocess.run(["bash", "docs/study/run_study.sh", *args], cwd=tmp_path,
                          env={**os.environ, "PYTHON": str(fake), **env}, capture_output=True,
                          text=True, timeout=60)


def test_run_study_shows_each_step_and_stops_at_the_first_failure(tmp_path):
    """A stand-in python records its calls and fails the third one: the script prints each
    step and its output, logs it, and stops there with that step's status."""
    result = run_study_with(
        tmp_path, '#!/usr/bin/env bash\nn=$(( $(cat calls 2>/dev/null | wc -l) + 1 ))\n'
                  'echo "$*" >> calls\necho "output of call $n"\n'
                  '[ "$n" -eq 3 ] && { echo "call $n failed" >&2; exit 7; }\nexit 0\n')
    assert result.returncode == 7
    calls = (tmp_path / "calls").read_text().splitlines()
    assert len(calls) == 3  # nothing after the failed step
    assert "step blog_depth_bias: " in result.stdout and "output of call 1" in result.stdout
    assert "output of call 3" in result.stdout and "call 3 failed" in result.stdout
    assert "step blog_baselines failed with exit status 7" in result.stderr
    log = (tmp_path / "outputs" / "study_logs" / "blog_baselines.log").read_text()
    assert "output of call 3" in log and "call 3 failed" in log
    times = (tmp_path / "outputs" / "study_logs" / "blog_baselines.times").read_text().split()
    assert times[0] == "start" and times[2] == "end" and times[-1] == "7"
    assert int(times[3]) >= int(times[1])


@pytest.mark.parametrize("left", [0, 5])
def test_run_study_runs_what_each_search_lacks_and_trains_the_best_setting(tmp_path, left):
    """A stand-in python answers how many trials each Optuna study still lacks: none (every
    search is skipped) or 5 (each search asks exactly those); Figure 2's net is then trained
    with the best setting the study reports."""
    result = run_study_with(
        tmp_path, '#!/usr/bin/env bash\necho "$*" >> calls\ncase "$*" in\n'
                  f'  *"study_state"*" left "*) echo {left} ;;\n'
                  '  *"study_state"*" best"*) echo "carry_bias=-3.5 optimizer.learning_rate=0.02" ;;\n'
                  'esac\nexit 0\n')
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    searches = [c for c in calls if "hparams_search=" in c]
    if left == 0:
        assert not searches
        assert "step paper_lr_plain_fc_mnist_depth100: all 16 trials done" in result.stdout
    else:
        assert len(searches) == 12 and all(c.endswith("hydra.sweeper.n_trials=5")
                                           for c in searches)
    fig2 = [c for c in calls if "hydra.run.dir=outputs/experiments/paper_fig2" in c]
    assert len(fig2) == 1 and "carry_bias=-3.5 optimizer.learning_rate=0.02" in fig2[0]


RECORD_CALLS = '#!/usr/bin/env bash\necho "$*" >> calls\n[[ "$*" == *" left "* ]] && echo 16\nexit 0\n'


def test_run_study_runs_only_the_chosen_steps_in_its_own_order(tmp_path):
    """Step names given as shell patterns run those steps alone, in the script's order
    (whatever order they were given in), searches and Figure 2 included."""
    result = run_study_with(tmp_path, RECORD_CALLS, "paper_fig2", "needs_depth*", "blog_lesion")
    assert result.returncode == 0, result.stderr
    ran = re.findall(r"step (\w+): ", result.stdout)
    assert ran == ["blog_lesion", "needs_depth_shallow", "needs_depth_baselines", "needs_depth",
                   "paper_fig2", "needs_depth_deep"]
    calls = (tmp_path / "calls").read_text()
    assert "experiment=blog_depth_bias seed=0,1,2" not in calls and "hparams_search" not in calls
    assert "every chosen step finished" in result.stdout


def test_run_study_lists_its_steps_and_refuses_an_unknown_one_before_running_any(tmp_path):
    listed = run_study_with(tmp_path, RECORD_CALLS, "--list")
    assert listed.returncode == 0, listed.stderr
    names = listed.stdout.split()
    assert names[0] == "blog_depth_bias" and names[-1] == "depth_1000"
    assert "blog_baselines_modern" in names and "softmax_baseline_modern" in names
    assert "paper_lr_bias_highway_fc_mnist_depth50" in names and "paper_fig2" in names
    assert not (tmp_path / "calls").exists()  # listing trains nothing

    result = run_study_with(tmp_path / "typo", RECORD_CALLS, "blog_lesion", "needs_dpeth*")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no step is named like 'needs_dpeth*'" in result.stderr
    assert "blog_depth_bias" in result.stderr and not (tmp_path / "typo" / "calls").exists()


def test_run_study_notes_that_a_step_is_alive_while_it_runs_and_stops_noting_after(tmp_path):
    """A step killed with the machine leaves no end line; its alive lines (every
    STUDY_HEARTBEAT_S seconds) say until when it ran. They stop with the step."""
    result = run_study_with(tmp_path, "#!/usr/bin/env bash\nsleep 2.5\n", "blog_lesion",
                            STUDY_HEARTBEAT_S="1")
    assert result.returncode == 0, result.stderr
    times_file = tmp_path / "outputs" / "study_logs" / "blog_lesion.times"
    lines = times_file.read_text().splitlines()
    assert lines[0].startswith("start ") and lines[-1].startswith("end ")
    alive = [int(line.split()[1]) for line in lines[1:-1]]
    assert len(alive) >= 1 and all(line.startswith("alive ") for line in lines[1:-1])
    assert int(lines[0].split()[1]) <= alive[0] <= alive[-1] <= int(lines[-1].split()[1])
    time.sleep(1.5)
    assert times_file.read_text().splitlines() == lines  # the heartbeat ended with the step


def analysis_figure_names() -> set[str]:
    """Every figure name the analysis can write, read from its code: drawer keys, FIGURE
    constants and the needs-depth FIGURES (a per-objective Optuna figure by its stem)."""
    import re

    from analysis.study import needs_depth_report

    names = set(needs_depth_report.FIGURES.values())
    for path in (REPO / "analysis").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r'(?:drawers|out)\[f?"([a-z0-9_]+?)(?:\{suffix\})?"\]', text))
        names |= set(re.findall(r'^FIGURE = "([a-z0-9_]+)"', text, re.M))
        names |= set(re.findall(r'out = \{"([a-z0-9_]+)"', text))
    return names


def test_docs_analysis_lists_every_option_and_every_figure_of_the_code():
    import re

    from analysis.__main__ import _parser

    doc = (REPO / "docs" / "analysis.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(--[a-z-]+)[^`]*` \|", doc, re.M)
    options = {o for action in _parser()._actions for o in action.option_strings
               if o.startswith("--") and o != "--help"}
    assert sorted(rows) == sorted(options)
    figures = doc[doc.index("## Figures"):doc.index("## Effective depth")]
    listed = set(re.findall(r"`([a-z][a-z0-9_]+)`", figures))
    names = analysis_figure_names()
    assert {"accuracy_heatmap", "gate_dynamics", "depth_task_success", "optuna"} <= names
    assert names - listed == set()
