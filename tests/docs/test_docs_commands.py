"""Docs that cannot rot: every shell command of the README and the docs is run with tiny sizes or parsed.

Pages: README.md, docs/*.md, data/README.md, benchmarks/README.md. Commands are taken from fenced ```bash, ```sh and
```console blocks (in console blocks only the lines after a ``$ `` prompt). A trailing ``\\`` joins lines, ``&&``
and ``;`` split a line into commands, a pipe's right side and redirections are dropped, ``cd DIR`` is followed
within its block, and comments and commands other than ``python ...`` / ``torchrun ...`` (pip, git, mkdir, cp,
tensorboard, ruff) are not checked. A ``VAR=value`` prefix is passed to the command's environment. Every remaining
command is treated in one of three ways:

1. **Run** (exit code 0 and its output files asserted): commands on the synthetic data (``-d synthetic``
   and ``data/prepare_data_synthetic.py``) and every command of a block preceded by the marker line

       <!-- runnable -->

   Sizes are rewritten to tiny ones before running: ``-f 9 -cs 16 -dep 1``, ``-e 1`` (``-e 2`` when resuming with
   ``-r``), ``-s 9`` where a stride is given, ``--viz-limit 4`` for ``--render``, tiny synthetic data through
   ``--data-dir`` (or ``--output-dir --frames 100 --subjects S1,S9 --actions Walking`` for the preparation script),
   and every output path (``-c``, ``-l``, ``--out``, ``--viz-output``, ``--viz-export``) moved into one temporary
   folder. The commands share that folder and run in page order (README first), so an evaluation finds the checkpoint
   that an earlier training command wrote; a command identical to one already run is not run twice. The script runs
   inside the test process, exactly as ``python SCRIPT ARGS`` would run it (a fresh interpreter costs about 10 s of
   CPU here, too much for about a dozen commands), with one torch thread (tiny models are fastest with one thread on
   a shared machine). Commands in `RUN_SKIPPED` would run but are too slow here; they are parsed instead.
2. **Parse** (in-process): every other command of the project's scripts (Human3.6M, video, benchmarks) runs its
   script up to the ``parse_args`` call and stops there, so a renamed script or flag, or a value outside a flag's
   choices, fails.
3. **Not checked**: commands matched by `NOT_CHECKED`, each with its reason.

``python`` blocks are checked too: their ``import`` statements must resolve.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import re
import runpy
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")),
         "data/README.md", "benchmarks/README.md"]
RUNNABLE_MARKER = "<!-- runnable -->"
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
NOT_CHECKED = {  # substring of the command -> why it is not run or parsed
    "python -m pip": "installs packages from the network",
    "python -m venv": "creates a virtual environment",
    "python -m pytest": "runs this test suite itself",
    "mmpose/tools/": "mmpose's converter, an external repository",
}
RUN_SKIPPED = {  # substring of a command on synthetic data -> why it is only parsed
    "torchrun": "starts one interpreter per process (about 10 s of CPU each here); tests/training covers DDP",
    "compare_mixers.py": "starts one run.py process per variant; the same run.py commands run above",
}
TINY_MODEL = {"-f": "9", "-cs": "16", "-dep": "1"}
OUTPUT_FLAGS = ("-c", "--checkpoint", "-l", "--log", "--out", "--viz-output", "--viz-export", "--output-dir")
SUBJECTS = "S1,S5,S6,S7,S8,S9,S11"


@dataclass
class Command:
    page: str
    line: int
    cwd: Path
    argv: list[str]  # script path (relative to cwd) and its arguments; torchrun's own options kept in `launcher`
    env: dict[str, str] = field(default_factory=dict)
    launcher: list[str] = field(default_factory=list)
    runnable: bool = False

    @property
    def text(self) -> str:
        return " ".join(self.launcher + ["python"] * (not self.launcher) + self.argv)

    @property
    def script(self) -> Path:
        return (self.cwd / self.argv[0]).resolve()

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def _fenced_blocks(text: str):
    """(language, first line number, lines, marked runnable) of every fenced block."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = re.match(r"^\s*```(\w*)\s*$", lines[index])
        if not opening:
            index += 1
            continue
        previous = next((line.strip() for line in reversed(lines[:index]) if line.strip()), "")
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith("```"):
            end += 1
        yield opening.group(1).lower(), index + 2, lines[index + 1:end], previous == RUNNABLE_MARKER
        index = end + 1


def _logical_lines(language: str, first: int, lines: list[str]):
    """(line number, command text) of a shell block: prompts, comments and continuations handled."""
    pending, start = "", first
    for number, raw in enumerate(lines, start=first):
        line = raw.strip()
        if language == "console" and not pending:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line and not line.startswith("#"):
            yield start, line


def _command(page: str, number: int, cwd: Path, text: str, runnable: bool) -> Command | None:
    tokens = [token for token in shlex.split(text) if not re.match(r"\d*>", token)]  # drop redirections
    env = {}
    while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", tokens[0]):
        key, value = tokens.pop(0).split("=", 1)
        env[key] = value
    if not tokens:
        return None
    if tokens[0] == "torchrun":
        script_at = next(i for i, token in enumerate(tokens) if token.endswith(".py"))
        return Command(page, number, cwd, tokens[script_at:], env, tokens[:script_at], runnable)
    if tokens[0] in ("python", "python3"):
        return Command(page, number, cwd, tokens[1:], env, [], runnable)
    return None


def collect_commands() -> list[Command]:
    commands = []
    for page in PAGES:
        for language, first, lines, runnable in _fenced_blocks((ROOT / page).read_text()):
            if language not in SHELL_LANGUAGES:
                continue
            cwd = ROOT
            for number, line in _logical_lines(language, first, lines):
                for part in (piece.split(" | ")[0].strip() for piece in re.split(r"&&|;", line)):
                    if part.startswith("cd "):
                        cwd = (cwd / shlex.split(part)[1]).resolve()
                    elif (command := _command(page, number, cwd, part, runnable)) is not None:
                        commands.append(command)
    return commands


def python_blocks() -> list[tuple[str, int, str]]:
    return [(page, first, "\n".join(lines)) for page in PAGES
            for language, first, lines, _ in _fenced_blocks((ROOT / page).read_text()) if language == "python"]


def _not_checked_reason(command: Command) -> str | None:
    text = command.text
    return next((reason for key, reason in NOT_CHECKED.items() if key in text), None)


def _value(argv: list[str], *names: str) -> str | None:
    for index, token in enumerate(argv):
        if token in names and index + 1 < len(argv):
            return argv[index + 1]
    return None


def _set(argv: list[str], names: tuple[str, ...], value: str) -> None:
    for index, token in enumerate(argv):
        if token in names:
            argv[index + 1] = value
            return
    argv += [names[0], value]


def should_run(command: Command) -> bool:
    if any(key in command.text for key in RUN_SKIPPED):
        return False
    name = command.script.name
    synthetic = _value(command.argv, "-d", "--dataset") == "synthetic"
    return command.runnable or name == "prepare_data_synthetic.py" or (
        synthetic and name in ("run.py", "compare_mixers.py"))


def tiny_argv(command: Command, workspace: Path, data_dir: Path) -> list[str]:
    """The command's arguments with tiny sizes and every output inside `workspace` (see the module docstring)."""
    argv = list(command.argv[1:])
    name = command.script.name
    if name == "prepare_data_synthetic.py":
        for flag, value in (("--frames", "100"), ("--subjects", "S1,S9"), ("--actions", "Walking")):
            _set(argv, (flag,), value)
        _set(argv, ("--output-dir",), str(workspace / "prepared"))
        (workspace / "prepared").mkdir(exist_ok=True)
        return argv
    if name == "run.py":
        for flag, value in TINY_MODEL.items():
            _set(argv, (flag,), value)
        if _value(argv, "-s", "--stride"):
            _set(argv, ("-s", "--stride"), "9")
        if "--evaluate" not in argv:
            _set(argv, ("-e", "--epochs"), "2" if {"-r", "--resume"} & set(argv) else "1")
        if "--render" in argv:
            _set(argv, ("--viz-limit",), "4")
        _set(argv, ("-c", "--checkpoint"), _value(argv, "-c", "--checkpoint") or "checkpoint")
        _set(argv, ("-l", "--log"), _value(argv, "-l", "--log") or "log/run")
        argv += ["--no-progress", "--workers", "0"]
    if name == "compare_mixers.py":
        _set(argv, ("-f", "--frames"), "9")
        _set(argv, ("-cs", "--channels"), "16")
        _set(argv, ("-dep", "--depth"), "1")
        _set(argv, ("-e", "--epochs"), "1")
    if _value(argv, "-d", "--dataset") == "synthetic":
        _set(argv, ("--data-dir",), str(data_dir))
    for index, token in enumerate(argv[:-1]):
        if token in OUTPUT_FLAGS and not Path(argv[index + 1]).is_absolute():
            argv[index + 1] = str(workspace / argv[index + 1])
    return argv


def expected_outputs(command: Command, argv: list[str]) -> list[Path]:
    """Files the command must have written."""
    name = command.script.name
    if name == "prepare_data_synthetic.py":
        return [Path(_value(argv, "--output-dir")) / "data_3d_synthetic.npz"]
    if name == "compare_mixers.py":
        return [Path(_value(argv, "--out")) / "summary.json"]
    if name != "run.py":
        return []
    checkpoint_dir = Path(_value(argv, "-c", "--checkpoint"))
    if "--render" in argv:
        outputs = [Path(path) for path in (_value(argv, "--viz-output"),) if path]
        export = _value(argv, "--viz-export")
        return outputs + ([Path(export if export.endswith(".npy") else export + ".npy")] if export else [])
    evaluated = _value(argv, "--evaluate")
    if evaluated:
        return [checkpoint_dir / f"{Path(evaluated).stem}_eval.json"]
    return [checkpoint_dir / "last_epoch.bin", checkpoint_dir / "best_epoch.bin"]


COMMANDS = collect_commands()
RUN = [command for command in COMMANDS if not _not_checked_reason(command) and should_run(command)]
PARSE = [command for command in COMMANDS if not _not_checked_reason(command) and not should_run(command)]


def test_every_command_is_classified():
    """Pages have commands, and every command is run, parsed or skipped for a stated reason."""
    assert RUN and PARSE
    assert len(RUN) + len(PARSE) + sum(bool(_not_checked_reason(c)) for c in COMMANDS) == len(COMMANDS)
    assert any(command.page == "README.md" for command in RUN), "the README's quick start must run"


@pytest.fixture(scope="session")
def docs_workspace(tmp_path_factory):
    """A temporary folder holding tiny synthetic data (every Human3.6M subject, one action, 100 frames per take)."""
    workspace = tmp_path_factory.mktemp("docs")
    data_dir = workspace / "synthetic_data"
    data_dir.mkdir()
    from data import prepare_data_synthetic

    prepare_data_synthetic.main(["--output-dir", str(data_dir), "--frames", "100", "--subjects", SUBJECTS,
                                 "--actions", "Walking"])
    return {"workspace": workspace, "data_dir": data_dir, "done": set()}


@pytest.fixture
def run_in_process(monkeypatch):
    """Run a script as ``python SCRIPT ARGS`` would, inside this process (one import of torch and the project for all
    commands instead of one per command: a fresh interpreter costs about 10 s of CPU here). Returns the exit code."""
    import torch

    def run(command: Command, argv: list[str]) -> int:
        monkeypatch.setattr(sys, "argv", [str(command.script), *argv])
        monkeypatch.chdir(command.cwd)
        for key, value in {"MPLBACKEND": "Agg", **command.env}.items():
            monkeypatch.setenv(key, value)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            runpy.run_path(str(command.script), run_name="__main__")
        except SystemExit as exit_:
            return 0 if exit_.code in (None, 0) else exit_.code if isinstance(exit_.code, int) else 1
        finally:
            torch.set_num_threads(threads)
        return 0

    return run


@pytest.mark.parametrize("command", RUN, ids=[command.id for command in RUN])
def test_runnable_command(command: Command, docs_workspace, run_in_process, capsys):
    argv = tiny_argv(command, docs_workspace["workspace"], docs_workspace["data_dir"])
    key = (command.script, tuple(argv))
    if key in docs_workspace["done"]:
        return  # the same command already ran (e.g. the README's quick start repeated in docs/TRAINING.md)
    for needed in (_value(argv, "--evaluate"), _value(argv, "-r", "--resume")):
        if needed and not (Path(_value(argv, "-c", "--checkpoint")) / needed).exists():
            pytest.fail(f"{command.id}: {needed} is written by an earlier command of the docs, which did not run")
    code = run_in_process(command, argv)
    output = capsys.readouterr()
    assert code == 0, f"{command.id}: `{command.text}` failed (exit {code}):\n{output.out[-2000:]}\n" \
                      f"{output.err[-3000:]}"
    for path in expected_outputs(command, argv):
        assert path.exists(), f"{command.id}: `{command.text}` did not write {path}"
    docs_workspace["done"].add(key)


class _Parsed(BaseException):
    """Raised right after a script's parse_args succeeded (a BaseException, so run_cli does not catch it)."""


@pytest.mark.parametrize("command", PARSE, ids=[command.id for command in PARSE])
def test_command_parses(command: Command, monkeypatch, capsys):
    assert command.script.is_file(), f"{command.id}: `{command.text}`: no script {command.script}"
    parse_args = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, args=None, namespace=None):
        parse_args(self, args, namespace)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
    monkeypatch.setattr(sys, "argv", [str(command.script), *command.argv[1:]])
    monkeypatch.chdir(command.cwd)
    try:
        runpy.run_path(str(command.script), run_name="__main__")
    except _Parsed:
        return
    except SystemExit as exit_:
        pytest.fail(f"{command.id}: `{command.text}` does not parse (exit {exit_.code}): {capsys.readouterr().err}")
    pytest.fail(f"{command.id}: `{command.text}`: the script ended without parsing its arguments")


@pytest.mark.parametrize("page, line, source", python_blocks(), ids=[f"{p}:{n}" for p, n, _ in python_blocks()])
def test_python_block_imports_resolve(page, line, source):
    try:
        tree = ast.parse(source)
    except SyntaxError:
        pytest.skip(f"{page}:{line} is a sketch of an API, not Python code")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            missing = [alias.name for alias in node.names if not hasattr(module, alias.name)]
            assert not missing, f"{page}:{line}: {node.module} has no {', '.join(missing)}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_resolve(page):
    """Every relative link of a page names an existing file, and its #anchor a heading of that file."""
    source = ROOT / page
    for target in re.findall(r"\]\(([^)\s]+)\)", source.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        path, _, anchor = target.partition("#")
        linked = (source.parent / path).resolve() if path else source
        assert linked.exists(), f"{page}: link to {target}: no {linked}"
        if anchor and linked.suffix == ".md":
            headings = {_anchor(line.lstrip("#")) for line in linked.read_text().splitlines() if line.startswith("#")}
            assert anchor in headings, f"{page}: link to {target}: no heading with anchor #{anchor} in {path or page}"
