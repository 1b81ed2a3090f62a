"""The VEN against the test VTN over loopback, with the real openadr3-client underneath."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from community_server.dso.in_force import cap_in_force
from community_server.dso.notifications import NOTIFICATION_PATH, register_notification_route
from community_server.dso.openadr_events import EanMap
from community_server.dso.signals import CapMode, CapSignal, SignalSource
from community_server.dso.ven import LinkStatus, VenClient, VenConfig

from .conftest import NOW, QUARTER, Clock
from .spec import REQUEST_SCHEMA, validate
from .vtn import CLIENT_ID, CLIENT_SECRET, TestVtn, event, program

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from datetime import datetime

    from community_server.dso.audit import DsoStore

EAN = "871685900000000011"
OTHER_EAN = "871685900000000028"
FAR_EAN = "871685900000000035"
VERSIONS = ["3.0.1", "3.1.0"]


class Setup:
    def __init__(self, vtn: TestVtn, base_url: str, store: DsoStore, clock: Clock) -> None:
        self.vtn = vtn
        self.base_url = base_url
        self.store = store
        self.clock = clock
        self.signals: list[CapSignal] = []
        self.usage_w: float | None = None

    def ven(self, **overrides: object) -> VenClient:
        settings: dict[str, object] = {
            "vtn_base_url": self.base_url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "token_url": f"{self.base_url}/auth/token",
            "version": self.vtn.version,
            "eans": EanMap({EAN: "trafo-12", OTHER_EAN: "trafo-13"}),
            "emergency_import_w": 150_000.0,
            "default_import_w": 200_000.0,
            "link_lost_after_s": 60.0,
            "allow_insecure_http": True,
        }
        settings.update(overrides)
        return VenClient(
            VenConfig(**settings),  # type: ignore[arg-type]
            self.store,
            self.clock,
            usage=self.usage,
            on_signal=self.signals.append,
        )

    def usage(self, transformer_id: str, start: datetime, end: datetime) -> float | None:
        return self.usage_w

    def in_force(self, ven: VenClient, transformer: str = "trafo-12") -> tuple[float | None, str]:
        cap = cap_in_force(
            transformer,
            self.store.signals_for(transformer, self.clock.now),
            self.clock.now,
            link_lost=ven.link_lost(),
            fallback=ven.fallback(transformer),
        )
        return cap.import_w, cap.source.value if cap.source else "none"


@pytest.fixture(params=VERSIONS)
async def setup(
    request: pytest.FixtureRequest,
    store: DsoStore,
    clock: Clock,
    socket_enabled: None,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Setup]:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the loopback VTN has no TLS
    vtn = TestVtn(request.param, clock)
    vtn.programs.append(program(version=vtn.version))
    server = TestServer(vtn.application(), host="127.0.0.1")
    await server.start_server()
    yield Setup(vtn, str(server.make_url(vtn.prefix)), store, clock)
    await server.close()


def _actions(store: DsoStore) -> list[str]:
    return [entry.action for entry in store.audit(NOW - timedelta(days=1))]


async def test_a_frame_from_the_vtn_is_stored_and_in_force(setup: Setup) -> None:
    setup.vtn.events.append(event("ev-1", NOW, [320.0, 300.0], version=setup.vtn.version))
    ven = setup.ven()
    status = await ven.poll_once()
    assert status.connected
    assert status.last_error is None
    assert (status.programs, status.events, status.rejected_events) == (1, 1, 0)
    [signal] = setup.signals
    assert signal.source is SignalSource.OPENADR
    assert signal.mode is CapMode.FRAME
    assert signal.transformer_id == "trafo-12"
    assert [i.import_w for i in signal.intervals] == [320_000.0, 300_000.0]
    assert signal.intervals[1].start == NOW + QUARTER
    assert setup.in_force(ven) == (320_000.0, "openadr")

    # Polling again stores nothing new.
    await ven.poll_once()
    assert len(setup.signals) == 1
    assert _actions(setup.store) == ["received"]


async def test_eans_map_to_transformers_and_unknown_eans_are_ignored(setup: Setup) -> None:
    version = setup.vtn.version
    setup.vtn.programs[0] = program(version=version, gac=False)
    setup.vtn.events += [
        event("ev-1", NOW, [300.0], version=version, eans=(EAN, OTHER_EAN, FAR_EAN)),
        event("ev-2", NOW, [100.0], version=version, eans=(FAR_EAN,)),
    ]
    ven = setup.ven()
    status = await ven.poll_once()
    assert sorted(s.transformer_id for s in setup.signals) == ["trafo-12", "trafo-13"]
    assert status.rejected_events == 1  # ev-2 is for nobody here
    assert "targets no EAN" in setup.store.audit(NOW)[-1].detail


async def test_export_limits_and_emergencies(setup: Setup) -> None:
    version = setup.vtn.version
    setup.vtn.programs[0] = program(version=version, gac=False)
    setup.vtn.events += [
        event("ev-x", NOW, [250.0], version=version, payload_type="EXPORT_CAPACITY_LIMIT"),
        event("ev-e", NOW, [3], version=version, payload_type="SIMPLE", units="KW"),
        event("ev-s", NOW + QUARTER, [1], version=version, payload_type="SIMPLE"),
    ]
    ven = setup.ven()
    status = await ven.poll_once()
    by_event = {s.request_id.split("/")[0] if s.request_id else "": s for s in setup.signals}
    assert by_event["ev-x"].intervals[0].export_w == 250_000.0
    assert by_event["ev-x"].intervals[0].import_w is None
    assert by_event["ev-e"].mode is CapMode.EMERGENCY
    assert by_event["ev-e"].intervals[0].import_w == 150_000.0  # the configured emergency cap
    assert "ev-s" not in by_event  # SIMPLE level 1 caps nothing
    assert status.rejected_events == 1
    cap = cap_in_force(
        "trafo-12",
        setup.store.signals_for("trafo-12", NOW),
        NOW,
        link_lost=False,
        fallback=ven.fallback("trafo-12"),
    )
    assert (cap.import_w, cap.export_w, cap.mode) == (150_000.0, 250_000.0, CapMode.EMERGENCY)


async def test_the_gac_profile_refuses_what_it_does_not_allow(setup: Setup) -> None:
    version = setup.vtn.version
    setup.vtn.events += [
        event("ev-ok", NOW, [300.0], version=version),
        event("ev-x", NOW, [250.0], version=version, payload_type="EXPORT_CAPACITY_LIMIT"),
        event("ev-w", NOW, [300_000.0], version=version, units="W"),
    ]
    ven = setup.ven()
    status = await ven.poll_once()
    assert [s.request_id.split("/")[0] for s in setup.signals if s.request_id] == ["ev-ok"]
    assert status.rejected_events == 2
    assert all(
        "GAC" in entry.detail for entry in setup.store.audit(NOW) if entry.action == "rejected"
    )


@pytest.mark.parametrize(
    ("hostile", "reason"),
    [
        (
            {"payloadDescriptors": [{"payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KWH"}]},
            "KW or W",
        ),
        ({"intervals": []}, "intervals"),
        ({"intervals": None}, "intervals"),
        ({"programID": None}, "programID"),
        (
            {
                "intervals": [
                    {"id": i, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [1.0]}]}
                    for i in range(2500)
                ]
            },
            "at most 2000",
        ),
        (
            {
                "intervals": [
                    {"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [-5]}]}
                ]
            },
            "negative",
        ),
        (
            {
                "intervals": [
                    {"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": ["lots"]}]}
                ]
            },
            "",
        ),
        ({"intervalPeriod": {"start": NOW.isoformat(), "duration": "P1M"}}, "duration"),
        ({"intervalPeriod": None}, "intervalPeriod"),
    ],
)
async def test_hostile_events_are_rejected_and_the_rest_kept(
    setup: Setup, hostile: dict[str, object], reason: str
) -> None:
    version = setup.vtn.version
    setup.vtn.programs[0] = program(version=version, gac=False)
    setup.vtn.events += [
        event("ev-bad", NOW, [300.0], version=version) | hostile,
        event("ev-ok", NOW, [310.0], version=version),
    ]
    ven = setup.ven()
    status = await ven.poll_once()
    assert status.connected
    assert status.rejected_events == 1
    assert [s.intervals[0].import_w for s in setup.signals] == [310_000.0]
    [rejection] = [e for e in setup.store.audit(NOW) if e.action == "rejected"]
    assert "ev-bad" in rejection.detail
    assert reason in rejection.detail


@pytest.mark.parametrize("body", [b"not json", b"{}", b"[" * 10, b" " * 5_000_001])
async def test_a_broken_event_list_is_a_failed_poll_not_a_crash(setup: Setup, body: bytes) -> None:
    setup.vtn.events_body = body
    ven = setup.ven()
    status = await ven.poll_once()
    assert not status.connected
    assert status.last_error is not None
    assert setup.signals == []


async def test_expired_tokens_are_renewed(setup: Setup) -> None:
    setup.vtn.events.append(event("ev-1", NOW, [320.0], version=setup.vtn.version))
    ven = setup.ven()
    assert (await ven.poll_once()).connected
    fetched = setup.vtn.token_requests
    setup.vtn.revoke_tokens()  # as if the token expired early at the authorization server
    status = await ven.poll_once()
    assert not status.connected
    assert "refused our token" in (status.last_error or "")
    assert (await ven.poll_once()).connected
    assert setup.vtn.token_requests > fetched  # a fresh token, not the revoked one


async def test_wrong_credentials_fail_cleanly(setup: Setup) -> None:
    ven = setup.ven(client_secret="wrong")
    status = await ven.poll_once()
    assert not status.connected
    assert status.last_error


async def test_lost_link_keeps_the_frame_then_falls_back_to_safe_mode(setup: Setup) -> None:
    version = setup.vtn.version
    setup.vtn.events += [
        event("ev-1", NOW, [320.0, 300.0], version=version),
        event("ev-safe", NOW, [180.0], version=version, name="safe-mode", duration="P9999Y"),
    ]
    ven = setup.ven()
    status = await ven.poll_once()
    assert status.safe_mode_import_w == {"trafo-12": 180_000.0}
    assert len(setup.signals) == 1  # the safe-mode event is a fallback, not a cap in force

    setup.vtn.down = True
    setup.clock.now = NOW + timedelta(seconds=30)
    assert not (await ven.poll_once()).connected
    assert not ven.link_lost()  # not yet: 60 s without a successful poll
    setup.clock.now = NOW + timedelta(minutes=2)
    status = await ven.poll_once()
    assert ven.link_lost()
    assert status.lost_since == setup.clock.now
    assert setup.in_force(ven) == (320_000.0, "openadr")  # the last frame stays in force

    setup.clock.now = NOW + 2 * QUARTER  # the frame has ended
    assert setup.in_force(ven) == (180_000.0, "safe_mode")

    setup.vtn.down = False
    status = await ven.poll_once()
    assert status.connected
    assert not ven.link_lost()
    assert setup.in_force(ven) == (None, "none")
    assert [a for a in _actions(setup.store) if a.startswith("link")] == [
        "link_lost",
        "link_restored",
    ]


async def test_without_safe_mode_the_configured_default_applies(setup: Setup) -> None:
    ven = setup.ven(link_lost_after_s=0.0)
    setup.vtn.down = True
    status = await ven.poll_once()
    assert isinstance(status, LinkStatus)
    assert ven.link_lost()
    assert setup.in_force(ven) == (200_000.0, "configured_default")


async def test_changed_and_deleted_events_end_their_caps(setup: Setup) -> None:
    version = setup.vtn.version
    setup.vtn.events.append(event("ev-1", NOW, [320.0, 300.0], version=version))
    ven = setup.ven()
    await ven.poll_once()
    setup.vtn.events[0] = event(
        "ev-1", NOW, [280.0, 260.0], version=version, modified=NOW - timedelta(minutes=1)
    )
    await ven.poll_once()
    assert setup.in_force(ven) == (280_000.0, "openadr")
    setup.vtn.events.clear()
    await ven.poll_once()
    assert setup.in_force(ven) == (None, "none")
    assert _actions(setup.store) == ["received", "received", "cancelled", "cancelled"]


async def test_usage_is_reported_once_per_finished_interval(setup: Setup) -> None:
    setup.vtn.events.append(
        event("ev-1", NOW, [320.0, 300.0], version=setup.vtn.version, report_usage=True)
    )
    setup.usage_w = 251_500.0
    ven = setup.ven()
    await ven.poll_once()
    assert setup.vtn.reports == []  # nothing finished yet
    setup.clock.now = NOW + QUARTER
    await ven.poll_once()
    await ven.poll_once()
    [report] = setup.vtn.reports
    validate(setup.vtn.version, REQUEST_SCHEMA[setup.vtn.version].format("report"), report)
    assert report["eventID"] == "ev-1"
    assert report["resources"][0]["resourceName"] == "trafo-12"
    assert report["resources"][0]["intervals"][0]["payloads"][0] == {
        "type": "USAGE",
        "values": [251.5],
    }


async def test_subscriptions_and_notifications(setup: Setup) -> None:
    ven = setup.ven(callback_url="https://coop.example/api/v1/dso/openadr/notifications")
    status = await ven.poll_once()
    assert status.subscribed
    [subscription] = setup.vtn.subscriptions
    validate(
        setup.vtn.version, REQUEST_SCHEMA[setup.vtn.version].format("subscription"), subscription
    )
    operation = subscription["objectOperations"][0]
    assert operation["bearerToken"] == ven.callback_token
    await ven.poll_once()
    assert len(setup.vtn.subscriptions) == 1  # once per program

    app = web.Application()
    register_notification_route(app, ven)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        notification = {"objectType": "EVENT", "operation": "POST", "object": {"id": "ev-9"}}
        headers = {"Authorization": f"Bearer {ven.callback_token}"}
        forged = await client.post(
            NOTIFICATION_PATH, json=notification, headers={"Authorization": "Bearer guess"}
        )
        assert forged.status == 401
        garbage = await client.post(NOTIFICATION_PATH, data=b"[]", headers=headers)
        assert garbage.status == 400
        huge = await client.post(NOTIFICATION_PATH, data=b"{" * 70_000, headers=headers)
        assert huge.status == 413
        assert not ven.poll_pending
        response = await client.post(NOTIFICATION_PATH, json=notification, headers=headers)
        assert response.status == 200
        assert ven.poll_pending  # the wake-up is the whole effect


async def test_a_vtn_without_subscriptions_is_polled(setup: Setup) -> None:
    setup.vtn.refuse_subscriptions = True
    setup.vtn.events.append(event("ev-1", NOW, [320.0], version=setup.vtn.version))
    ven = setup.ven(callback_url="https://coop.example/notify")
    status = await ven.poll_once()
    assert status.connected
    assert not status.subscribed
    assert len(setup.signals) == 1


async def test_start_polls_until_stopped(setup: Setup) -> None:
    setup.vtn.events.append(event("ev-1", NOW, [320.0], version=setup.vtn.version))
    ven = setup.ven(poll_interval_s=0.05)
    await ven.start()
    try:
        for _ in range(200):
            if setup.signals:
                break
            await asyncio.sleep(0.05)
    finally:
        await ven.stop()
    assert len(setup.signals) == 1


async def test_a_rejected_event_is_audited_once_per_version(setup: Setup) -> None:
    version = setup.vtn.version
    setup.vtn.events.append(
        event("ev-bad", NOW, [300.0], version=version, payload_type="EXPORT_CAPACITY_LIMIT")
    )
    ven = setup.ven()
    for _ in range(3):
        status = await ven.poll_once()
        assert status.rejected_events == 1  # still counted as rejected on every poll

    def rejections() -> list[str]:
        return [e.detail for e in setup.store.audit(NOW) if e.action == "rejected"]

    assert len(rejections()) == 1
    # A new version of the event is judged (and audited) afresh.
    setup.vtn.events[0]["modificationDateTime"] = (NOW + QUARTER).isoformat()
    await ven.poll_once()
    await ven.poll_once()
    assert len(rejections()) == 2
    # Once the VTN withdraws it, it is forgotten: if it came back it would be audited again.
    setup.vtn.events.clear()
    await ven.poll_once()
    setup.vtn.events.append(
        event("ev-bad", NOW, [300.0], version=version, payload_type="EXPORT_CAPACITY_LIMIT")
    )
    await ven.poll_once()
    assert len(rejections()) == 3


async def test_an_emergency_under_the_gac_profile_is_a_low_import_limit_now(setup: Setup) -> None:
    version = setup.vtn.version
    setup.vtn.events += [
        event("ev-frame", NOW - QUARTER, [300.0, 300.0], version=version),
        event("ev-simple", NOW, [3], version=version, payload_type="SIMPLE", units="KW"),
        event("ev-alert", NOW, [1], version=version, payload_type="ALERT_GRID_EMERGENCY"),
    ]
    ven = setup.ven()
    status = await ven.poll_once()
    # The profile allows IMPORT_CAPACITY_LIMIT only: emergency payloads are refused, saying how.
    assert status.rejected_events == 2
    rejections = [e.detail for e in setup.store.audit(NOW) if e.action == "rejected"]
    assert len(rejections) == 2
    assert all("low IMPORT_CAPACITY_LIMIT starting now" in detail for detail in rejections)
    # The profile's emergency: a low import limit from now, in force at once over the frame.
    setup.vtn.events.append(event("ev-now", NOW, [40.0], version=version))
    await ven.poll_once()
    assert setup.in_force(ven) == (40_000.0, "openadr")
    assert setup.signals[-1].mode is CapMode.FRAME
