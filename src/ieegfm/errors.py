"""Exceptions that the command line reports as one line, without a traceback."""

from __future__ import annotations


class IeegfmError(Exception):
    """A user error: bad input file, bad config. The CLI prints ``ieegfm: error: <message>`` and exits 2."""


class ConfigError(IeegfmError):
    """Unknown key, wrong type or value in a config or override."""


class InputError(IeegfmError):
    """A recording, table or audio file that cannot be used as given (names the file and what was expected)."""


class OutputError(IeegfmError):
    """An output that cannot be written: disk full, a file size limit, a read-only folder (names the folder)."""
