"""Expected errors: the failures a user can cause and fix, as opposed to bugs.

Every layer (featurestore, pipeline, train) raises these for problems with
what it was given, and the CLI prints them as one or two lines, without a
traceback, and exits with the class's ``exit_code``: 2 when the command
itself was wrong (a path that does not exist, an unknown name, a bad config
file), 1 when the data is (a sheet without a header row, a locked or
incomplete store). Anything else that escapes a command is a bug and keeps
its traceback.

Subclasses that stand in for a builtin error also derive from it
(``ConfigError`` is a ``ValueError``, ``MissingPathError`` a
``FileNotFoundError``), so code that catches the builtin keeps working.

>>> raise DataError("sheet.csv: no header row containing 'path'")  # doctest: +SKIP
"""
from __future__ import annotations

import errno


class MepipeError(Exception):
    """An expected failure whose message says what is wrong and how to fix it.

    The message is the first argument; ``str()`` returns it unquoted (unlike
    ``KeyError``'s), since the CLI prints it as a sentence.
    """

    exit_code = 1

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class UsageError(MepipeError):
    """The command was given something it cannot use; exit status 2."""

    exit_code = 2


class DataError(MepipeError):
    """The data (a dataset, sheet or store) is not as it must be; exit status 1."""

    exit_code = 1


class MissingPathError(UsageError, FileNotFoundError):
    """A file or folder named on the command line (or derived from it) does not exist."""


class UnknownNameError(UsageError, KeyError):
    """A dataset, stage, feature or option name that mepipe does not know; the message lists the known ones."""


class ConfigError(UsageError, ValueError):
    """A config file or parameter value that cannot be used: malformed, unknown keys, out-of-range values."""


class SheetError(DataError, ValueError):
    """An annotation sheet or manifest that cannot be read as one (no header row, missing columns)."""


class DiskFullError(DataError, OSError):
    """The disk (or quota) filled up while writing; the work done so far is kept."""


NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
"""``errno`` values of a full disk or an exhausted quota."""


def out_of_space(error: BaseException) -> bool:
    """Whether ``error`` is a full disk or quota: a condition of the machine, not of the clip being written."""
    return isinstance(error, OSError) and error.errno in NO_SPACE_ERRNOS
