"""How the CLI reports failures: expected errors as sentences, bugs as tracebacks.

Every command runs inside :class:`ReportingGroup`, which catches
:class:`~mepipe.featurestore.errors.MepipeError` (and ``FileNotFoundError``,
which outside code raises for a path the user gave), prints ``error: <message>``
on stderr and exits with the error's status: 2 for usage errors, 1 for data
errors. The traceback is printed too only with ``-v``. Ctrl-C prints one line,
saying whether rerunning resumes, and exits 130. A command therefore never
catches an error just to print it; it raises a subclass of
:class:`~mepipe.featurestore.errors.UsageError` or
:class:`~mepipe.featurestore.errors.DataError` (or ``click.UsageError`` for
option checks) and this module does the rest.
"""
from __future__ import annotations

import sys
import traceback

import click

from mepipe.featurestore.errors import MepipeError
from mepipe.featurestore.safety import printable

FOREIGN_EXPECTED: tuple[tuple[type[BaseException], int], ...] = ((FileNotFoundError, 2),)
"""Builtin errors that mean a wrong path was given, with their exit status."""


def exit_status(error: BaseException) -> int | None:
    """The exit status an expected error maps to, or None for a bug."""
    if isinstance(error, MepipeError):
        return error.exit_code
    for kind, status in FOREIGN_EXPECTED:
        if isinstance(error, kind):
            return status
    return None


def error_message(error: BaseException) -> str:
    """The one- or two-line sentence printed for an expected error.

    Escaped for the terminal: messages quote file names, sample ids and
    attributes that may come from a store someone else built.
    """
    if isinstance(error, OSError) and not isinstance(error, MepipeError) and error.filename:
        return printable(f"{error.filename}: {error.strerror or error}")
    return printable(str(error))


INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT, as shells report it)."""

RESUMABLE = ("build", "train", "reproduce")
"""Commands that pick up where an interrupted run stopped when run again."""


def interrupted_message(command: str | None) -> str:
    """What Ctrl-C leaves behind, said in one line."""
    return "interrupted; run the same command again to resume" if command in RESUMABLE else "interrupted"


class ReportingGroup(click.Group):
    """A click group that turns expected errors of its commands into ``error: ...`` and an exit status,
    and Ctrl-C into one line and status 130 (not click's "Aborted!" and 1)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo(f"\n{interrupted_message(ctx.invoked_subcommand)}", err=True)
            sys.stderr.flush()
            ctx.exit(INTERRUPTED)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as error:  # noqa: BLE001 -- sorted into expected errors and bugs just below
            status = exit_status(error)
            if status is None:
                raise
            if _verbose(ctx):
                click.echo("".join(traceback.format_exception(error)).rstrip(), err=True)
            click.echo(f"error: {error_message(error)}", err=True)
            sys.stderr.flush()
            ctx.exit(status)


def _verbose(ctx: click.Context) -> bool:
    return bool(ctx.find_root().params.get("verbose"))
