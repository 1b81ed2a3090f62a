"""Log lines per reason are limited and summarised; control characters cannot forge lines."""

from __future__ import annotations

import io
import logging

from community_server.log_limits import LimitedLog, SafeLogFilter, install_safe_logging, printable


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_a_flood_writes_the_first_lines_and_one_summary_per_reason() -> None:
    logger, stream = _logger("test.log_limits.flood")
    clock = Clock()
    log = LimitedLog(logger, first=3, period_s=60.0, clock=clock)
    for number in range(10_000):
        clock.now = number * 0.001
        log.log(logging.WARNING, "malformed", "rejected %d", number)
        log.log(logging.WARNING, "unknown_household", "not a member %d", number)
    log.flush()  # the window is still open: no summary yet
    clock.now = 61.0
    log.flush()
    lines = stream.getvalue().splitlines()
    assert lines[:2] == ["WARNING rejected 0", "WARNING not a member 0"]
    assert len(lines) == 2 * 3 + 2
    assert "WARNING 9997 more 'malformed' lines left out in the last 61 s" in lines
    assert log.suppressed_total == 2 * 9997
    clock.now = 200.0
    log.log(logging.WARNING, "malformed", "rejected again")  # a new window writes again
    assert stream.getvalue().splitlines()[-1] == "WARNING rejected again"


def test_a_newline_in_an_argument_cannot_start_a_log_line() -> None:
    logger, stream = _logger("test.log_limits.forge")
    log = LimitedLog(logger)
    log.log(
        logging.WARNING,
        "malformed",
        "rejected: %s",
        "field 'x\n2026-12-07 WARNING community_server: household huis-2 removed\r\x1b[2J'",
    )
    output = stream.getvalue()
    assert output.count("\n") == 1
    assert "\\n2026-12-07 WARNING" in output
    assert "\\x1b" in output


def test_the_handler_filter_escapes_every_record() -> None:
    logger, stream = _logger("test.log_limits.filter")
    install_safe_logging(logger)
    install_safe_logging(logger)  # idempotent
    assert sum(isinstance(f, SafeLogFilter) for f in logger.handlers[0].filters) == 1
    logger.warning("name %s and %d", "a\nb\u2028c", 5)
    logger.warning("plain")
    assert stream.getvalue() == "WARNING name a\\nb\\u2028c and 5\nWARNING plain\n"
    assert printable("tab\there\x7f") == "tab\\there\\x7f"
