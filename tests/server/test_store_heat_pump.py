"""The store's heat-pump facts: the comfort margin, the pause and its count (issue 14)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from community_server import store as store_module
from community_server.schema import MIGRATIONS
from community_server.store import Store
from netbewust_core.protocol.messages import Message, Telemetry

from .conftest import NOW

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    import pytest


def report(
    index: int,
    *,
    margin: float | None = 90.0,
    paused_until: datetime | None = None,
    outdoor_c: float | None = None,
) -> Message:
    moment = NOW + timedelta(seconds=10 * index)
    return Message(
        community="wijk-1",
        household="huis-1",
        sent_at=moment,
        message_id=f"t{index}",
        body=Telemetry(
            measured_at=moment,
            interval_s=10,
            power_w=(500.0,),
            participating=True,
            comfort_margin_min=margin,
            paused_until=paused_until,
            outdoor_temperature_c=outdoor_c,
        ),
    )


def _member(store: Store) -> None:
    code = store.issue_join_code("wijk-1", NOW, timedelta(days=1)).code
    store.redeem_join_code(code, NOW, "huis-1")


def test_the_outdoor_temperature_is_stored_read_back_and_exported(server_store: Store) -> None:
    _member(server_store)
    server_store.save_received(
        [report(0, outdoor_c=-4.5), report(1), report(2, outdoor_c=-3.5)], NOW
    )
    stored = [s.telemetry.outdoor_temperature_c for s in server_store.telemetry("huis-1")]
    assert stored == [-4.5, None, -3.5]
    export = server_store.export_household("huis-1")
    assert export is not None
    assert [t["outdoor_temperature_c"] for t in export["telemetry"]] == [-4.5, None, -3.5]
    # The mean is over the reports carrying one; 20 s of them cover less than 30 s.
    window = (NOW - timedelta(minutes=1), NOW + timedelta(minutes=1))
    assert server_store.outdoor_means(*window, 20.0) == [-4.0]
    assert server_store.outdoor_means(*window, 30.0) == []


def test_a_pause_is_counted_once_and_ended_by_a_report_without_it(server_store: Store) -> None:
    _member(server_store)
    until = NOW + timedelta(hours=2)
    server_store.save_received([report(0)], NOW)
    state = server_store.household("huis-1")
    assert state is not None
    assert state.heat_pump is not None
    assert (state.heat_pump.comfort_margin_min, state.heat_pump.pauses) == (90.0, 0)
    # Begun, redelivered (the same id) and reported again: one pause.
    server_store.save_received([report(1, paused_until=until)], NOW)
    server_store.save_received([report(1, paused_until=until)], NOW)
    server_store.save_received([report(2, margin=80.0, paused_until=until)], NOW)
    state = server_store.household("huis-1")
    assert state is not None
    assert state.heat_pump is not None
    assert (state.heat_pump.pauses, state.heat_pump.paused_until) == (1, until)
    assert state.heat_pump.comfort_margin_min == 80.0
    # The household ended it early: its next report has the margin and no pause.
    server_store.save_received([report(3, margin=70.0)], NOW)
    state = server_store.household("huis-1")
    assert state is not None
    assert state.heat_pump is not None
    ended = NOW + timedelta(seconds=30)
    assert state.heat_pump.paused_until == ended
    assert not state.heat_pump.paused(ended)
    # A new pause is the second; an older report, late, changes neither margin nor pause.
    server_store.save_received([report(4, paused_until=until), report(-1, margin=10.0)], NOW)
    state = server_store.household("huis-1")
    assert state is not None
    assert state.heat_pump is not None
    assert (state.heat_pump.pauses, state.heat_pump.comfort_margin_min) == (2, 90.0)
    assert state.heat_pump.paused_until == until
    export = server_store.export_household("huis-1")
    assert export is not None
    assert export["heat_pump"]["pauses"] == 2


def test_a_plain_v1_report_leaves_no_heat_pump_state(server_store: Store) -> None:
    _member(server_store)
    server_store.save_received([report(0, margin=None)], NOW)
    state = server_store.household("huis-1")
    assert state is not None
    assert state.heat_pump is None


def test_a_database_from_before_the_heat_pump_columns_is_migrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    with monkeypatch.context() as patch:
        patch.setattr(store_module, "MIGRATIONS", MIGRATIONS[:3])
        old = Store.open(path)
        old.create_community("wijk-1", "Wijk", NOW)
        _member(old)
        assert old.schema_version() == 3
        old.close()
    store = Store.open(path)
    try:
        assert store.schema_version() == MIGRATIONS[-1][0]
        state = store.household("huis-1")
        assert state is not None
        assert state.heat_pump is None
        store.save_received([report(0, paused_until=NOW + timedelta(hours=1))], NOW)
        state = store.household("huis-1")
        assert state is not None
        assert state.heat_pump is not None
        assert state.heat_pump.pauses == 1
    finally:
        store.close()
