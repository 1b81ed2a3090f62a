"""Logs an attacker cannot flood or forge.

`printable` escapes control characters (a field name holding a newline cannot start a
log line of its own), `SafeLogFilter` applies it to every record a handler writes, and
`LimitedLog` writes the first `first` lines per reason in each `period_s`, then one
summary with the count it left out.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


class SafeLogFilter(logging.Filter):
    """Escapes control characters in each record's message (not in its traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = printable(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        return True


def install_safe_logging(logger: logging.Logger | None = None) -> None:
    """Add `SafeLogFilter` to every handler of `logger` (the root logger by default)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, SafeLogFilter) for f in handler.filters):
            handler.addFilter(SafeLogFilter())


@dataclass(slots=True)
class _Window:
    started: float
    written: int = 0
    suppressed: int = 0


@dataclass(slots=True)
class LimitedLog:
    """Per-reason line budget for one logger; arguments are made printable."""

    logger: logging.Logger
    first: int = 10
    period_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    suppressed_total: int = 0
    _windows: dict[str, _Window] = field(default_factory=dict)

    def log(self, level: int, reason: str, message: str, *args: object) -> None:
        now = self.clock()
        window = self._windows.get(reason)
        if window is None or now - window.started >= self.period_s:
            if window is not None:
                self._summarise(reason, window)
            window = self._windows[reason] = _Window(started=now)
        if window.written < self.first:
            window.written += 1
            clean = tuple(printable(a) if isinstance(a, str) else a for a in args)
            self.logger.log(level, printable(message), *clean)
        else:
            window.suppressed += 1
            self.suppressed_total += 1

    def flush(self) -> None:
        """Write the summaries of windows that have ended; call now and then."""
        now = self.clock()
        for reason, window in list(self._windows.items()):
            if now - window.started >= self.period_s:
                self._summarise(reason, window)
                del self._windows[reason]

    def _summarise(self, reason: str, window: _Window) -> None:
        if window.suppressed:
            self.logger.warning(
                "%d more %r lines left out in the last %.0f s",
                window.suppressed,
                printable(reason),
                self.clock() - window.started,
            )
