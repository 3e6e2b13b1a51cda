"""Entry point: the ``blox-lat`` group, lazy subcommands and the one place errors are shown.

Subcommand modules are imported only when used, so ``blox-lat --help`` stays instant and a
missing heavy dependency only affects the command that needs it. Every user error (a
:class:`~blox_lat.errors.BloxLatError` or a click usage error) becomes one line on stderr and
exit status 2; anything else is a bug and keeps its traceback.

Warnings (numpy's RuntimeWarnings and the like) are held while a command runs: one that
fails on bad input or is interrupted shows only its one line, so nothing precedes the error;
one that succeeds, exits with a status of its own or hits a bug shows them when it ends.

``-v``/``-vv`` (or ``BLOX_LAT_LOG=info|debug``) shows the library's log lines (the ``blox_lat``
logger only) on stderr for the command's duration; by default there are none.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings

import click

from blox_lat import __version__
from blox_lat._extras import missing_extra_message
from blox_lat.errors import BloxLatError

#: command name -> "module:attribute"; filled as stages of the flow land.
COMMANDS: dict[str, str] = {
    "space": "blox_lat.cli.space:space",
    "export": "blox_lat.cli.export:export",
    "measure": "blox_lat.cli.measure:measure",
    "devices": "blox_lat.cli.devices:devices",
    "dataset": "blox_lat.cli.dataset:dataset",
    "train": "blox_lat.cli.train:train",
    "report": "blox_lat.cli.report:report",
    "compare": "blox_lat.cli.report:compare",
    "stats": "blox_lat.cli.report:stats",
    "cluster": "blox_lat.cli.cluster:cluster",
    "predict": "blox_lat.cli.predict:predict",
    "profile": "blox_lat.cli.profile:profile",
    "survey": "blox_lat.cli.survey:survey",
}

EXIT_USER_ERROR = 2

#: the environment variable that sets the log level as -v/-vv do
LOG_ENV = "BLOX_LAT_LOG"
_LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LOG_FORMAT = "blox-lat: %(levelname)s %(name)s: %(message)s"


class BloxGroup(click.Group):
    """A click group with lazily imported subcommands and one-line errors."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            module, attr = COMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        # click turns any EPIPE into a silent exit 1 before main() sees it; a reader that went
        # away (`blox-lat space list all | head -1`) is a normal end, so catch it first
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            if not _stdout_closed():
                raise  # a pipe to a worker or a tool broke: a real failure
            _discard_stdout()
            raise click.exceptions.Exit(0) from None

    def main(self, args=None, prog_name=None, **kwargs):  # type: ignore[override]
        kwargs.pop("standalone_mode", None)
        held: list[warnings.WarningMessage] = []
        try:
            with warnings.catch_warnings(record=True) as held:
                rv = super().main(args=args, prog_name=prog_name or "blox-lat", standalone_mode=False, **kwargs)
        except click.exceptions.Abort:
            click.echo("blox-lat: interrupted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            click.echo(f"blox-lat: error: {_one_line(exc.format_message())}", err=True)
            sys.exit(EXIT_USER_ERROR)
        except BloxLatError as exc:
            click.echo(f"blox-lat: error: {_one_line(str(exc))}", err=True)
            sys.exit(EXIT_USER_ERROR)
        except ModuleNotFoundError as exc:  # an optional dependency the core install leaves out
            message = missing_extra_message(exc.name, _command(args))
            if message is None:
                _show(held)
                raise
            click.echo(f"blox-lat: error: {message}", err=True)
            sys.exit(EXIT_USER_ERROR)
        except BaseException:
            _show(held)  # a bug's traceback (or a command's own exit status) keeps its context
            raise
        _show(held)
        sys.exit(rv if isinstance(rv, int) else 0)


def _command(args: list[str] | None) -> str | None:
    """The subcommand a command line names (its first word that is not an option)."""
    words = sys.argv[1:] if args is None else list(args)
    return next((w for w in words if not w.startswith("-")), None)


def _show(held: list[warnings.WarningMessage]) -> None:
    """Show the warnings held while a command ran, as they would have been shown then."""
    for w in held:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports an error on it)."""
    try:
        import select

        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll, or stdout is no file (CliRunner)
        return False


def _discard_stdout() -> None:
    """Point stdout at /dev/null so that flushing what is still buffered at exit cannot fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _log_level(verbose: int) -> int | None:
    """The level ``-v`` (INFO), ``-vv`` (DEBUG) or ``$BLOX_LAT_LOG`` asks for (the more verbose
    wins); None: no log lines."""
    levels = [logging.INFO if verbose == 1 else logging.DEBUG] if verbose else []
    value = os.environ.get(LOG_ENV, "").strip().lower()
    if value:
        if value not in _LOG_LEVELS:
            raise click.UsageError(f"{LOG_ENV}={value!r} is not a log level: use {', '.join(_LOG_LEVELS)}, "
                                   f"or unset it")
        levels.append(_LOG_LEVELS[value])
    return min(levels) if levels else None


def _log_to_stderr(ctx: click.Context, level: int) -> None:
    """Send the ``blox_lat`` logger's records at ``level`` and up to stderr until the command
    ends; other libraries' loggers and the root logger are left alone."""
    logger = logging.getLogger("blox_lat")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # a root handler someone else configured would print them twice

    def restore() -> None:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]

    ctx.call_on_close(restore)


@click.group(cls=BloxGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="blox-lat")
@click.option("-v", "--verbose", count=True,
              help=f"Log what blox-lat does (connects, commands, transfers, workers, retries) on stderr: "
                   f"-v INFO, -vv DEBUG. Also {LOG_ENV}=info or debug.")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """blox-lat: latency benchmarking and dataset building for the Blox search space."""
    level = _log_level(verbose)
    if level is not None:
        _log_to_stderr(ctx, level)


def main() -> None:
    cli.main()
