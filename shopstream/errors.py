"""The one error family every command turns into a one-line message and an exit code."""

from __future__ import annotations


class ShopstreamError(Exception):
    """An expected failure with a message fit for a person and an exit code.

    The CLI prints ``error: <message>`` on one line and exits with ``exit_code``;
    it never shows a traceback for these.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class ConfigError(ShopstreamError):
    """Bad configuration: a malformed URL, an unknown protocol, a missing file."""

    exit_code = 2


class UsageError(ShopstreamError):
    """Bad input from a person: flags, files, offset specs."""

    exit_code = 2


class StackError(ShopstreamError):
    """The local stack could not be fetched, started, or stopped."""


class ConnectionFailed(ShopstreamError):
    """A broker, registry or database did not answer."""

    exit_code = 2
