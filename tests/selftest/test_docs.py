"""The README and docs/ stay true to the code: every command they show is one the code takes, every
file, module and link they name exists, and the front page stays short.

Commands are read from fenced code blocks and from inline code spans: `python -m matrix ...` is
parsed by the matrix's own parser (`matrix.cli.parser`), `python -m prefixcheck.registry ...`
runs, `tox -e ...` names tox envs, any other `python -m M` names an importable module and
`python FILE` an existing file. Optional parts written `[...]`, alternatives `a|b` and `...` are
read as the command without them, with the first alternative.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import re
import shlex
from pathlib import Path

import pytest

from matrix.cli import parser as matrix_parser
from prefixcheck.registry import cli as registry_cli

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# Written by hand: the front page and every page under docs/ but the research notes (not part of
# the suite) and the rendered matrix report (generated from a run).
PAGES = [README] + sorted(
    p for p in (ROOT / "docs").rglob("*.md") if "research" not in p.parts and p.parent.name != "matrix"
)
FRONT_PAGE_LINES = 200  # issue 22: a README a newcomer reads in two minutes

_FENCE = re.compile(r"```(?:bash|sh|console)?\n(.*?)```", re.S)
_SPAN = re.compile(r"`([^`]+)`")
_COMMAND = re.compile(r"(?:python3? -m [\w.]+|python3? [\w./-]+\.py|tox -e \S+)")
_SHELL_END = re.compile(r"[#&|;)\"]")
# Run by the machine's own Python, not the project's environment (pip installs tox itself).
OUTSIDE_THE_ENV = {"pip"}


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _shell_commands(text: str) -> list[str]:
    """The commands of the page's fenced code blocks: each from its program to the shell's next
    `#`, `&&`, `|`, `;`, `)` or quote, continuation lines joined."""
    found = []
    for block in _FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            for m in _COMMAND.finditer(line):
                found.append(_SHELL_END.split(line[m.start() :])[0].strip())
    return found


def _spans(text: str) -> list[str]:
    """The page's inline code spans, outside fenced blocks, wrapped lines joined."""
    return [" ".join(span.split()) for span in _SPAN.findall(_FENCE.sub("", text))]


def _span_commands(text: str) -> list[str]:
    """The inline code spans that are commands (or a part of one: `python -m matrix probe --entry`)."""
    return [span for span in _spans(text) if _COMMAND.match(span)]


def _as_run(command: str) -> list[str]:
    """The command's words without its optional parts, its alternatives reduced to the first."""
    while re.search(r"\[[^\[\]]*\]", command):
        command = re.sub(r"\s*\[[^\[\]]*\]", "", command)
    words = [w.split("|")[0] for w in shlex.split(command) if w != "..."]
    return [w for w in words if w]


def _cases(pattern: str, *, spans: bool = True):
    """(page, command, whole) for every command matching `pattern`: whole where it is a fenced
    block's full command line, not a mention in the text."""
    seen = []
    for page in PAGES:
        text = page.read_text()
        found = [(c, True) for c in _shell_commands(text)] + (
            [(c, False) for c in _span_commands(text)] if spans else []
        )
        for command, whole in found:
            named_only = re.fullmatch(r"python3? -m [\w.]+", command)  # the command line named, not run
            if re.match(pattern, command) and not named_only and (page, command, whole) not in seen:
                seen.append((page, command, whole))
    return [pytest.param(command, whole, id=f"{_rel(page)}: {command[:60]}") for page, command, whole in seen]


def _subparser(name: str) -> argparse.ArgumentParser | None:
    commands = next(a for a in matrix_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices.get(name)


def test_the_readme_is_a_front_page():
    lines = README.read_text().splitlines()
    assert len(lines) < FRONT_PAGE_LINES, f"README.md has {len(lines)} lines: move the detail to docs/"
    text = README.read_text()
    for command in ("tox -e peft-latest", "tox -e lint,selftest,known-good"):
        assert command in text, f"README.md no longer shows {command!r}"


def test_the_ci_script_runs_the_readmes_test_command():
    assert "tox -e lint,selftest,known-good" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize(("command", "whole"), _cases(r"python3? -m matrix\b"))
def test_every_matrix_command_parses(command, whole):
    """A full command line parses; a mention names a subcommand and options that subcommand has."""
    words = _as_run(command)[3:]
    sub = _subparser(words[0])
    assert sub is not None, f"`{command}`: `python -m matrix` has no subcommand {words[0]!r}"
    options = {o for action in sub._actions for o in action.option_strings}
    unknown = sorted(w for w in words if w.startswith("-") and w.split("=")[0] not in options)
    assert not unknown, f"`{command}`: `python -m matrix {words[0]}` takes no {unknown}"
    if whole:
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                matrix_parser().parse_args(words)
        except SystemExit as exc:
            pytest.fail(f"`{command}` is not a command `python -m matrix` takes: {err.getvalue().strip()} ({exc})")


@pytest.mark.parametrize(("command", "whole"), _cases(r"python3? -m prefixcheck\.registry\b"))
def test_every_registry_command_runs(command, whole, tmp_path):
    words = _as_run(command)[3:]
    if words[:1] == ["--write-doc"]:  # writes the table: into a copy of the page, here
        copy = tmp_path / "known-issues.md"
        copy.write_text((ROOT / "docs" / "known-issues.md").read_text())
        words = ["--write-doc", str(copy)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        status = registry_cli.main(words)
    assert status == 0, f"`{command}` exits {status}: {out.getvalue()[-500:]}"


@pytest.mark.parametrize(("command", "whole"), _cases(r"tox -e "))
def test_every_tox_command_names_tox_envs(command, whole, tox_envs):
    named = set(_as_run(command)[2].split(","))
    assert named <= tox_envs, f"`{command}`: no tox env {sorted(named - tox_envs)}"


@pytest.mark.parametrize(("command", "whole"), _cases(r"python3? -m (?!matrix\b|prefixcheck\.registry\b)"))
def test_every_other_module_command_names_a_module(command, whole):
    module = _as_run(command)[2]
    if module not in OUTSIDE_THE_ENV:
        assert importlib.util.find_spec(module) is not None, f"`{command}`: no module {module}"


@pytest.mark.parametrize(("command", "whole"), _cases(r"python3? (?:bench|\.ci|tests|docs|matrix|prefixcheck)/"))
def test_every_script_command_names_a_file_of_the_project(command, whole):
    script = _as_run(command)[1]
    assert (ROOT / script).is_file(), f"`{command}`: no file {script}"


_PATH = re.compile(r"(?:prefixcheck|matrix|strategies|tests|bench|docs|\.ci|\.github)/[\w./-]*")
_MODULE = re.compile(r"(?:prefixcheck|matrix|strategies)(?:\.\w+)+(?<!\.json)(?<!\.html)(?<!\.md)(?<!\.toml)(?<!\.png)")


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_file_a_page_names_exists(page):
    spans = {s for s in _spans(page.read_text()) if _PATH.fullmatch(s)}
    missing = sorted(s for s in spans if not (ROOT / s).exists())
    assert not missing, f"{_rel(page)} names files that do not exist: {missing}"


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        name = ".".join(parts[:cut])
        try:
            if importlib.util.find_spec(name) is None:
                continue
        except ModuleNotFoundError:  # a module's attribute, not a submodule
            continue
        obj = importlib.import_module(name)
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_module_a_page_names_exists(page):
    spans = {s for s in _spans(page.read_text()) if _MODULE.fullmatch(s)}
    missing = sorted(s for s in spans if not _resolves(s))
    assert not missing, f"{_rel(page)} names modules or attributes that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_link_a_page_makes_resolves(page):
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text())
    local = [link for link in links if not re.match(r"\w+://|mailto:", link)]
    missing = sorted(link for link in local if not (page.parent / link).exists())
    assert not missing, f"{_rel(page)} links to files that do not exist: {missing}"
