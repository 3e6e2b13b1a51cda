"""The examples in README.md, docs/*.md and ``--help`` work as written.

- Every ``blox-lat`` command line in a fenced code block (``bash``/``sh`` blocks; ``$ blox-lat``
  lines of plain blocks; ``\\`` continuations joined, ``&&``/``;``/``|`` split) is parsed by the
  real CLI, down the command group with ``make_context``: an option that does not exist, a bad
  choice or a missing argument fails. ``cluster slurm``'s JOB is parsed as the command it names.
  Nothing is run by the parse; files need not exist.
- A placeholder inside a word (``<teacher-hash>``) is replaced by a sample value from
  ``PLACEHOLDERS``; an unlisted one fails. Synopsis lines (``[--epochs N] ...``) are the only
  lines not parsed: they are listed in ``SYNOPSES`` and their command and option names are
  checked instead.
- Within one document, two ``measure`` commands with the same ``--out`` (or the same default)
  use the same protocol flags: a rerun with other flags is refused as mixing protocols.
- The cheap commands (``space``, ``devices list|show``) run for real and exit 0, and so does
  ``--help`` of every command; every example line of a command's docstring is a line of its
  ``--help`` (a ``\\b`` block: click rewraps paragraphs) and parses like the docs' examples.
- Every ``python`` block compiles; those in ``PYTHON_RUNS`` run (in an empty folder).
"""

from __future__ import annotations

import ast
import builtins
import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from blox_lat.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)

#: placeholders that stand inside a word of an example, and the sample value parsed in their place
PLACEHOLDERS = {"<teacher-hash>": "c3bc16e69893c8ea08f1e89e61f4caa5", "<hash>": "c3bc16e69893c8ea08f1e89e61f4caa5",
                "<t8>": "c3bc16e6"}
#: shell variables of the examples, and the value parsed in their place
VARIABLES = {"HOME": "/home/me", "T": "teacher.pt", "SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "1000"}
#: synopsis lines, not parsed (optional parts in brackets, "..."): only their command and
#: option names are checked
SYNOPSES = {
    ("training.md", "blox-lat train normal   SELECTOR --data PATH --out DIR [--epochs N] [--device cuda|cpu] "
                    "[--shard k/N] [--json]"),
    ("training.md", "blox-lat train distill  SELECTOR --teacher PT --data PATH --out DIR [--init remap] "
                    "[--epochs N] ..."),
    ("training.md", "blox-lat train finetune SELECTOR --teacher PT --library DIR --data PATH --out DIR "
                    "[--fraction F] [--epochs N] ..."),
}
#: commands cheap enough to run for real, as the docs write them
CHEAP = {("space", "info"), ("space", "show"), ("space", "list"), ("space", "blocks"), ("devices", "list"),
         ("devices", "show")}
#: python blocks that need no data, by document and first line: they run
PYTHON_RUNS = {("space.md", "from blox_lat import space as sp")}
#: the measure options that make its protocol; a campaign refuses a rerun that changes one
#: (what harness/_rules.py check_identity and check_anchors compare; the device is the folder's too)
PROTOCOL = ("device", "runs", "runs_per_group", "warmup_runs", "warmup_s", "interleave", "rounds", "rewarm_runs",
            "anchors")


def _blocks(path: Path):
    text = path.read_text()
    for match in FENCE.finditer(text):
        yield match.group(1), match.group(2), text.count("\n", 0, match.start(2)) + 1


def doc_commands(path: Path) -> list[tuple[str, str]]:
    """(``file:line``, command) for every ``blox-lat`` command of the document's code blocks."""
    found = []
    for lang, body, first in _blocks(path):
        if lang not in ("bash", "sh", "shell", "console", ""):
            continue
        lines = body.split("\n")
        i = 0
        while i < len(lines):
            start, line = i, lines[i]
            while line.endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line[:-1] + " " + lines[i].strip()
            i += 1
            line = line.strip()
            if line.startswith("$ "):
                line = line[2:]
            elif not lang and not line.startswith("blox-lat "):
                continue  # a plain block's other lines are output
            if (path.name, line) in SYNOPSES:
                found.append((f"{path.name}:{first + start}", line))
                continue
            for command in _split(line):
                if command.startswith("blox-lat "):
                    found.append((f"{path.name}:{first + start}", command))
    return found


def _split(line: str) -> list[str]:
    """The commands of a shell line (``&&``, ``||``, ``;``, ``|`` outside quotes), comments dropped."""
    if line.startswith("#"):
        return []
    parts, current, quote = [], "", None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            break
        elif ch in ";|&":
            parts.append(current)
            current = ""
            continue
        current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _argv(line: str) -> list[str]:
    for name, value in PLACEHOLDERS.items():
        line = line.replace(name, value)
    assert not re.search(r"<[\w-]+>", line), f"a placeholder not in PLACEHOLDERS: {line!r}"
    line = re.sub(r"\$\{?(\w+)\}?", lambda m: VARIABLES[m.group(1)], line)
    return shlex.split(line)[1:]


def parse(argv: list[str]) -> tuple[tuple[str, ...], click.Context]:
    """The command path and the context click makes of ``blox-lat ARGV``, group by group,
    without running anything (``--help`` is left out: it exits)."""
    command: click.Command = cli
    ctx: click.Context | None = None
    path: list[str] = []
    name, args = "blox-lat", list(argv)
    while True:
        ctx = command.make_context(name, args, parent=ctx)
        if not isinstance(command, click.Group):
            return tuple(path), ctx
        rest = [*ctx._protected_args, *ctx.args]
        assert rest, f"{' '.join(['blox-lat', *path])} names a group, not a command"
        name, command, args = command.resolve_command(ctx, rest)
        path.append(name)


def parse_example(line: str) -> tuple[tuple[str, ...], click.Context]:
    path, ctx = parse(_argv(line))
    bad = [f for f in ctx.params.get("device_files") or () if not f.endswith(".toml")]
    assert not bad, f"{line!r}: device profile files are TOML: {bad}"
    if path == ("cluster", "slurm"):  # the job's own arguments, parsed as that command
        job_path, _ = parse(list(ctx.params["job_args"]))
        assert job_path in {("export",), ("measure",), ("train", "normal"), ("train", "distill"),
                            ("train", "finetune")}, f"{line!r}: not a job cluster slurm runs"
    return path, ctx


ALL_COMMANDS = [item for doc in DOCS for item in doc_commands(doc)]
COMMANDS = [(where, line) for where, line in ALL_COMMANDS if (where.split(":")[0], line) not in SYNOPSES]


def test_the_docs_have_examples():
    assert len(COMMANDS) >= 80
    assert {where.split(":")[0] for where, _ in COMMANDS} >= {"README.md", "cluster.md", "devices.md",
                                                              "predict.md", "dataset.md"}


@pytest.mark.parametrize(("where", "line"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_example_parses(where, line):
    parse_example(line)


def test_synopses_are_listed_and_name_real_options():
    found = {(where.split(":")[0], line) for where, line in ALL_COMMANDS}
    assert SYNOPSES <= found, f"SYNOPSES lists lines the docs no longer have: {sorted(SYNOPSES - found)}"
    for _, line in sorted(SYNOPSES):
        words = line.split()[1:]
        command: click.Command = cli
        while isinstance(command, click.Group):
            command = _sub(command, words.pop(0))
        options = {o for p in command.params for o in p.opts}
        named = {w for w in re.findall(r"(?<![\w-])--?[a-z][\w-]*", line)}
        assert named <= options, f"{line!r}: no such option {sorted(named - options)}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_measure_examples_sharing_an_out_share_the_protocol(doc):
    """A campaign is resumed with its own protocol only: a doc must not send two protocols to one folder."""
    seen: dict[str, tuple[str, dict]] = {}
    for where, line in doc_commands(doc):
        if (doc.name, line) in SYNOPSES:
            continue
        path, ctx = parse_example(line)
        if path != ("measure",):
            continue
        params = {**ctx.params, "device": ctx.params["record_as"] or (ctx.params["device_names"] or ("cpu",))[0]}
        out = params["out_dir"] or f"runs/{params['device']}"  # measure's default --out
        protocol = {k: params[k] for k in PROTOCOL}
        if out in seen:
            first, before = seen[out]
            changed = {k: (before[k], protocol[k]) for k in PROTOCOL if before[k] != protocol[k]}
            assert not changed, f"{where} sends other protocol flags than {first} to {out}: {changed}"
        else:
            seen[out] = (where, protocol)


@pytest.fixture()
def runner(tmp_path, monkeypatch):
    monkeypatch.setenv("BLOX_LAT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    return CliRunner()


CHEAP_COMMANDS = sorted({line for _, line in COMMANDS if tuple(_argv(line)[:2]) in CHEAP})


def test_cheap_examples_exist():
    assert {tuple(_argv(line)[:2]) for line in CHEAP_COMMANDS} == CHEAP


@pytest.mark.parametrize("line", CHEAP_COMMANDS)
def test_cheap_example_runs(runner, line):
    argv = [*_argv(line), *(["--no-adb"] if _argv(line)[:2] == ["devices", "list"] else [])]
    result = runner.invoke(cli, argv)
    assert result.exit_code == 0, f"{line!r} exited {result.exit_code}: {result.output}"
    assert result.output.strip()
    if argv[:2] == ["space", "list"] and "--cost" in argv:  # the columns its --help promises
        assert result.output.split("\n")[0].split()[-3:] == ["params", "macs", "flops"]


def _sub(group: click.Group, name: str) -> click.Command:
    """A subcommand, the lazy ones of the top group included."""
    command = group.get_command(click.Context(group), name)
    assert command is not None, f"no command {name!r}"
    return command


def _commands(group: click.Group = cli, path: tuple[str, ...] = ()):
    yield path, group
    for name in group.list_commands(click.Context(group)):
        command = _sub(group, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


EVERY_COMMAND = list(_commands())


@pytest.mark.parametrize(("path", "command"), EVERY_COMMAND, ids=[" ".join(p) or "blox-lat" for p, _ in EVERY_COMMAND])
def test_help_runs_and_keeps_examples_on_their_lines(runner, path, command):
    result = runner.invoke(cli, [*path, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    lines = {line.strip() for line in result.output.splitlines()}
    for example in re.findall(r"^\s*(blox-lat .*?)\s*$", command.help or "", re.M):
        assert example in lines, (
            f"the example {example!r} of 'blox-lat {' '.join(path)} --help' is rewrapped: put it in a \\b block")
    for example in _help_examples(command.help or ""):
        parse_example(example)


def _help_examples(text: str) -> list[str]:
    """The ``blox-lat`` command lines of a docstring's ``\\b`` blocks (``Quick look:  blox-lat ...``
    included), continuations joined."""
    found = []
    for paragraph in re.split(r"\n\s*\n", re.sub(r"\\\n\s*", " ", text)):
        if paragraph.strip().startswith("\b"):
            found += [line[line.index("blox-lat "):].strip() for line in paragraph.splitlines() if "blox-lat " in line]
    return found


def _python_blocks():
    for doc in DOCS:
        for lang, body, first in _blocks(doc):
            if lang == "python":
                yield doc.name, first, body


PYTHON = list(_python_blocks())


def _undefined(body: str) -> list[str]:
    """Names a block reads but neither imports, assigns nor defines (a NameError when run)."""
    tree = ast.parse(body)
    bound = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
            bound |= {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
    return sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - bound)


@pytest.mark.parametrize(("doc", "first", "body"), PYTHON, ids=[f"{d}:{f}" for d, f, _ in PYTHON])
def test_python_example_compiles_and_the_self_contained_run(runner, doc, first, body):
    code = compile(body, f"{doc}:{first}", "exec")
    assert not _undefined(body), f"{doc}:{first} uses names it never defines: {_undefined(body)}"
    if (doc, body.splitlines()[0]) in PYTHON_RUNS:
        exec(code, {"__name__": "__doc_example__"})


def test_python_runs_are_in_the_docs():
    blocks = {(doc, body.splitlines()[0]) for doc, _, body in PYTHON}
    assert PYTHON_RUNS <= blocks, f"PYTHON_RUNS names blocks the docs no longer have: {sorted(PYTHON_RUNS - blocks)}"


def test_readme_cluster_example_dry_run_then_status(runner, tmp_path):
    """The README's cluster flow with --dry-run: status says the job was never submitted, in a
    few lines (not one row per shard), and exits 1 with the command that submits it."""
    readme = [line for _, line in doc_commands(ROOT / "README.md")]
    (slurm,) = [line for line in readme if line.startswith("blox-lat cluster slurm ")]
    (status,) = [line for line in readme if line.startswith("blox-lat cluster status ")]
    written = runner.invoke(cli, [*_argv(slurm), "--dry-run"])
    assert written.exit_code == 0, written.output
    result = runner.invoke(cli, [*_argv(status), "--no-squeue"])
    assert result.exit_code == 1, result.output
    assert "never submitted" in result.output and "submit       sbatch " in result.output
    assert len(result.output.splitlines()) < 20, result.output
    table = runner.invoke(cli, [*_argv(status), "--no-squeue", "--per-shard"])
    assert table.output.count("not submitted") == 1000


#: options of other programs that the docs name on their own (sbatch's, snpe-net-run's, snpe-diagview's)
FOREIGN_OPTIONS = {"--help", "--cpus-per-task", "--chdir", "--requeue", "--use_dsp", "--use_gpu", "--profiling_level",
                   "--csv_format_version"}


def test_options_named_in_the_text_exist():
    """An option in inline code (`--latency corrected`, `blox-lat measure --runs 100`) is one of
    blox-lat's; spans that run another program (`sbatch --array=...`) are that program's."""
    options = set(FOREIGN_OPTIONS)
    for _, command in EVERY_COMMAND:
        for param in command.params:
            options |= {*param.opts, *param.secondary_opts}
    unknown = []
    for doc in DOCS:
        for span in re.findall(r"`([^`\n]+)`", FENCE.sub("", doc.read_text())):
            first = span.split()[0]
            if not first.startswith("-") and first != "blox-lat":
                continue
            unknown += [f"{doc.name}: {o} in `{span}`" for o in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", span)
                        if o not in options]
    assert not unknown, f"no such blox-lat option: {unknown}"
