"""Shared fixtures for the DSO tests: a settable clock and a fresh signal store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from community_server.dso.audit import DsoStore

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
QUARTER = timedelta(minutes=15)


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DsoStore]:
    dso_store = DsoStore.open(tmp_path / "server.db")
    yield dso_store
    dso_store.close()
