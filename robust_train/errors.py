"""One hierarchy for user errors: bad arguments, bad files, bad configs, unusable output paths.

Every class derives from :class:`RobustTrainError` *and* from the built-in exception a caller would catch for that
kind of mistake (``ValueError``, ``TypeError``, ``OSError``), so ``except ValueError`` keeps working. The command-line
entry points print a :class:`RobustTrainError` (and an ``OSError`` on a user path) as one line without a traceback
and exit with status 2 (:func:`robust_train.errors.report_user_error`).

Example:
    >>> issubclass(ArgumentError, ValueError) and issubclass(ArgumentError, RobustTrainError)
    True
"""

from __future__ import annotations

import sys

__all__ = [
    "ArgumentError",
    "ArgumentTypeError",
    "BadFileError",
    "IncompleteMetricError",
    "IncompleteMetricWarning",
    "OutputPathError",
    "RobustTrainError",
    "USER_EXIT_CODE",
    "report_user_error",
]

#: Exit status of a command-line tool that stopped on a user error.
USER_EXIT_CODE = 2


class RobustTrainError(Exception):
    """Base class of every error caused by what the user passed (argument, file, config, output path)."""


class ArgumentError(RobustTrainError, ValueError):
    """An argument has the right type but a bad value (out of range, NaN, wrong shape, unknown name)."""


class ArgumentTypeError(RobustTrainError, TypeError):
    """An argument has the wrong type or dtype."""


class BadFileError(RobustTrainError, ValueError):
    """A file exists but its content is unusable (truncated, empty, wrong format); the message names the file."""


class OutputPathError(RobustTrainError, OSError):
    """An output path cannot be written (read-only folder, a file where a folder is expected, not enough space)."""


class IncompleteMetricError(RobustTrainError, ValueError):
    """A metric was asked for a result that its state cannot give (a cell never updated, a zero baseline)."""


def report_user_error(prog: str, err: BaseException) -> int:
    """Print ``err`` as one line ``<prog>: error: <message>`` on stderr and return :data:`USER_EXIT_CODE`.

    ``OSError`` without a custom message (``PermissionError``, ``ENOSPC``...) is shown with its file name.

    Example:
        >>> report_user_error("tool", ArgumentError("x: bad"))
        2
    """
    msg = str(err)
    if isinstance(err, OSError) and not isinstance(err, RobustTrainError) and err.strerror:
        where = f": {err.filename}" if err.filename else ""
        msg = f"{err.strerror}{where}"
    print(f"{prog}: error: {msg}", file=sys.stderr)
    return USER_EXIT_CODE


class IncompleteMetricWarning(UserWarning):
    """A metric result is NaN because part of its state was never updated (a corruption, severity or bin)."""
