"""The community server's core: validate what households send, store it, then acknowledge.

Every delivery is decoded against protocol v1 and its topic. Rejected messages are
logged with their reason, counted in `metrics.rejected`, and acknowledged (so the
broker does not redeliver garbage forever). A message stamped more than
`timestamps.CLOCK_TOLERANCE` ahead of the server's clock is rejected the same way
(`future_timestamp`): a report from 2099 would otherwise count as fresh for ever. The
household is told so by a rate-limited notice (`notices`), so its owner sees why.
After a household's capabilities are stored it is told the optional v1 facts this server
reads (`features`), so a newer household sends them and an older one never sees it.
Valid ones are stored in batches in one durable transaction on a dedicated database
thread, and only then acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from netbewust_core.protocol.messages import (
    HOUSEHOLD_CHANNELS,
    MAX_RECEIPT_IDS,
    TOPIC_PREFIX,
    BaselineForecast,
    Capabilities,
    Channel,
    EmergencyCommand,
    Features,
    LimitUpdate,
    Message,
    NoticeCode,
    Presence,
    ProtocolError,
    Receipt,
    ReleaseCommand,
    ServerFeature,
    Telemetry,
    Topic,
    decode_for_topic,
    encode,
)

from .broker_link import BrokerError, BrokerLink, Incoming
from .log_limits import LimitedLog
from .metrics import Metrics
from .notices import NoticeLimiter
from .store import StoreError, starts_pause
from .timestamps import FUTURE_TIMESTAMP, future_reason

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from netbewust_core.limits import ExternalLimit

    from .config import ServerConfig
    from .store import Household, Store

_LOGGER = logging.getLogger(__name__)
MAX_BATCH = 500
UNKNOWN_HOUSEHOLD = "unknown_household"
STORE_ERROR = "store_error"
INTERNAL_ERROR = "internal_error"
RETRY_STORE_S = 1.0
FORGET_TIMEOUT_S = 2.0
_PRUNE_EVERY = timedelta(hours=1)


def household_subscriptions() -> list[str]:
    return [f"{TOPIC_PREFIX}/+/+/{channel}" for channel in HOUSEHOLD_CHANNELS]


def _stamped_ahead(message: Message, now: datetime) -> str | None:
    """Why a message stamped ahead of our clock is refused, else None: its `sent_at`
    (capabilities keep the newest by it), and a report's `measured_at` (a report from
    2099 would count as fresh for ever)."""
    if isinstance(message.body, Telemetry):
        reason = future_reason("measured_at", message.body.measured_at, now)
        if reason is not None:
            return reason
    return future_reason("sent_at", message.sent_at, now)


def _issued_when_sent(limit: ExternalLimit, now: datetime) -> ExternalLimit:
    """The limit stamped with the moment it is sent. A household rejects a limit issued
    before the one it holds, so limits must be issued in the order they are sent: a plan
    that took a while to compute, or a planned limit sent again after a fallback, would
    otherwise be refused."""
    if limit.issued_at >= now or limit.is_expired(now):
        return limit
    return dataclasses.replace(limit, issued_at=now)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class CommunityServer:
    """Runs on one event loop; the store is used only from its database thread."""

    def __init__(
        self,
        config: ServerConfig,
        store: Store,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = _utc_now,
        features: frozenset[ServerFeature] = frozenset(ServerFeature),
    ) -> None:
        self._config = config
        # Announced to households; empty: this server behaves as one from before them.
        self._features = features
        self._store = store
        self.metrics = metrics or Metrics()
        self._clock = clock
        # A flood of bad messages writes a few lines per reason and a count, not a line each.
        self.rejection_log = LimitedLog(_LOGGER)
        self._notices = NoticeLimiter()
        # Rejected deliveries queue too (message None): PUBACKs go out in arrival order.
        self._queue: asyncio.Queue[tuple[Incoming, Message | None]] = asyncio.Queue()
        self._db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netbewust-db")
        self._link = BrokerLink(config.mqtt, self._on_incoming, household_subscriptions())
        self._tasks: list[asyncio.Task[None]] = []
        # The newest stored report per household, for the live dashboard and allocation.
        self.latest_telemetry: dict[str, Telemetry] = {}
        # The newest baseline per household: its base load is the allocation's floor.
        self.latest_baseline: dict[str, BaselineForecast] = {}

    @property
    def is_connected(self) -> bool:
        return self._link.is_connected

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._ingest(), name="netbewust-ingest"),
            asyncio.create_task(self._prune_periodically(), name="netbewust-prune"),
        ]
        try:
            await self._link.start()
        except BaseException:
            await self._cancel_tasks()
            self._db_thread.shutdown(wait=True)
            raise

    async def stop(self) -> None:
        """Disconnect; unacknowledged deliveries stay with the broker for next time."""
        await self._link.stop()
        await self._cancel_tasks()
        self._db_thread.shutdown(wait=True)

    async def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def now(self) -> datetime:
        return self._clock()

    async def run_in_db[*Ts, T](self, call: Callable[[*Ts], T], *args: *Ts) -> T:
        """Run a blocking store call on the database thread."""
        return await asyncio.get_running_loop().run_in_executor(self._db_thread, call, *args)

    # --- household -> server ---------------------------------------------------------

    def _on_incoming(self, incoming: Incoming) -> None:
        try:
            message = decode_for_topic(incoming.topic, incoming.payload)
        except ProtocolError as err:
            self._reject(incoming, err.code, err.reason)
            return
        except Exception:  # a bug must not leave a delivery unacknowledged forever
            _LOGGER.exception("could not validate a message on %s", incoming.topic[:200])
            self._reject(incoming, INTERNAL_ERROR, "validation failed unexpectedly")
            return
        if message.channel not in HOUSEHOLD_CHANNELS:
            self._reject(incoming, "server_channel", f"a household sent {message.type_name}")
            return
        now = self._clock()
        ahead = _stamped_ahead(message, now)
        if ahead is not None:
            self._reject(incoming, FUTURE_TIMESTAMP, ahead)
            self._send_notice(message, NoticeCode.FUTURE_TIMESTAMP, now)
            return
        self.metrics.received[message.type_name] += 1
        self._queue.put_nowait((incoming, message))

    def _reject(self, incoming: Incoming, code: str, reason: str) -> None:
        self.metrics.rejected[code] += 1
        # The topic names the sender; the payload is never logged.
        self.rejection_log.log(
            logging.WARNING,
            code,
            "rejected a message on %s: %s",
            incoming.topic[:200],
            reason[:300],
        )
        self._queue.put_nowait((incoming, None))

    async def _ingest(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            messages = [message for _, message in batch if message is not None]
            refusals = await self._store_durably(messages)
            for incoming, message in batch:
                if message is not None:  # None: rejected on arrival, already counted
                    code = refusals.get(id(message))
                    if code is None:
                        self.metrics.stored[message.type_name] += 1
                        self._remember(message)
                    else:
                        self.metrics.rejected[code] += 1
                        self.rejection_log.log(
                            logging.WARNING,
                            code,
                            "rejected a message on %s: %s",
                            incoming.topic[:200],
                            "not a member" if code == UNKNOWN_HOUSEHOLD else "could not be stored",
                        )
                self._link.ack(incoming)
            # After the broker's acks, and on the loop's next turn: encoding and publishing
            # them overlaps the next batch's database write instead of delaying its start.
            stored = [m for m in messages if id(m) not in refusals]
            asyncio.get_running_loop().call_soon(self._send_receipts, stored)
            self.rejection_log.flush()

    def _send_notice(self, refused: Message, code: NoticeCode, now: datetime) -> None:
        """Tell the sender why, at most once per code every few minutes; QoS 0 on its
        receipts channel, as a receipt."""
        notice = self._notices.notice(refused, code, now)
        self.metrics.notices[code, "suppressed" if notice is None else "sent"] += 1
        if notice is not None:
            self._link.publish_at_most_once(str(notice.topic), encode(notice))

    def _send_receipts(self, stored: list[Message]) -> None:
        """Tell each household which of its reports are stored, so it stops keeping them
        (a household that does not read receipts never subscribes: the broker drops them).
        At most once: a lost receipt only makes the household send the report again,
        and a report stored before is not stored twice (by its id)."""
        ids: dict[tuple[str, str], list[str]] = {}
        for message in stored:
            if not isinstance(message.body, Presence):
                ids.setdefault((message.community, message.household), []).append(
                    message.message_id
                )
        now = self._clock()
        for (community, household), stored_ids in ids.items():
            for start in range(0, len(stored_ids), MAX_RECEIPT_IDS):
                receipt = Message(
                    community=community,
                    household=household,
                    sent_at=now,
                    body=Receipt(ids=tuple(stored_ids[start : start + MAX_RECEIPT_IDS])),
                )
                self._link.publish_at_most_once(str(receipt.topic), encode(receipt))
        if not self._features:
            return
        # A household sends its capabilities on every connect: answered with what we read.
        # At most once: a lost one leaves the household on plain v1 until its next connect.
        announced = sorted(self._features)
        joined = {(m.community, m.household) for m in stored if isinstance(m.body, Capabilities)}
        for community, member in joined:
            features = Message(
                community=community,
                household=member,
                sent_at=now,
                body=Features(features=tuple(announced)),
            )
            self._link.publish_at_most_once(str(features.topic), encode(features))

    def _remember(self, message: Message) -> None:
        body = message.body
        if isinstance(body, Telemetry):
            latest = self.latest_telemetry.get(message.household)
            if starts_pause(None if latest is None else latest.paused_until, body):
                self.metrics.heat_pump_pauses += 1
            # One stamped ahead (within the tolerance) gives way once the clock passes it.
            if (
                latest is None
                or body.measured_at > latest.measured_at
                or latest.measured_at > self._clock()
            ):
                self.latest_telemetry[message.household] = body
        elif isinstance(body, BaselineForecast):
            self.latest_baseline[message.household] = body

    async def _store_durably(self, messages: list[Message]) -> dict[int, str]:
        """Store a batch; returns a rejection code by `id()` of each message not stored.

        A batch that fails for any reason but an unavailable database is stored one
        message at a time, so a single poison message cannot hold up everyone else.
        """
        if not messages:
            return {}
        try:
            refused = await self._save_retrying(messages)
        except Exception:
            _LOGGER.exception("could not store a batch of %d; storing one by one", len(messages))
            return await self._save_each(messages)
        return {id(message): UNKNOWN_HOUSEHOLD for message in refused}

    async def _save_each(self, messages: list[Message]) -> dict[int, str]:
        refusals: dict[int, str] = {}
        for message in messages:
            try:
                if await self._save_retrying([message]):
                    refusals[id(message)] = UNKNOWN_HOUSEHOLD
            except Exception:
                _LOGGER.exception("could not store a %s message", message.type_name)
                refusals[id(message)] = STORE_ERROR
        return refusals

    async def _save_retrying(self, messages: list[Message]) -> list[Message]:
        """Save, retrying while the database is unavailable (disk full, I/O, locked).

        Nothing unstored is ever acknowledged, so waiting is the only safe answer.
        """
        while True:
            try:
                return await self.run_in_db(self._store.save_received, messages, self._clock())
            except sqlite3.OperationalError:
                self.metrics.store_failures += 1
                _LOGGER.exception("database unavailable; retrying %d messages", len(messages))
                await asyncio.sleep(RETRY_STORE_S)

    async def _prune_periodically(self) -> None:
        retention = timedelta(days=self._config.database.telemetry_retention_days)
        while True:
            now = self._clock()
            try:
                deleted = await self.run_in_db(self._store.prune, now, retention)
            except Exception:
                _LOGGER.exception("pruning old telemetry failed")
            else:
                if deleted:
                    _LOGGER.info("pruned %d rows older than %s", deleted, retention)
            await asyncio.sleep(_PRUNE_EVERY.total_seconds())

    # --- server -> household ---------------------------------------------------------

    async def send_limit(self, household_id: str, limit: ExternalLimit) -> Message:
        """Record, then publish (retained) a household's new limit; returns the message."""
        return await self._send(household_id, LimitUpdate(limit=limit), retain=True)

    async def send_limits(self, limits: Mapping[str, ExternalLimit]) -> list[Message]:
        """Record many households' limits in one transaction, then publish them all at once.

        Households that are not members (any more) are skipped with a warning.
        """
        households = {h.household_id: h for h in await self.run_in_db(self._store.households)}
        now = self._clock()
        outgoing: list[tuple[Message, bytes]] = []
        for household_id, limit in limits.items():
            household = households.get(household_id)
            if household is None:
                _LOGGER.warning("not sending a limit to %s: not a member", household_id)
                continue
            message = Message(
                community=household.community_id,
                household=household_id,
                sent_at=now,
                body=LimitUpdate(limit=_issued_when_sent(limit, now)),
            )
            outgoing.append((message, encode(message)))
        if not outgoing:
            return []
        await self.run_in_db(self._store.record_sent_many, outgoing, now)
        results = await asyncio.gather(
            *(
                self._link.publish(str(message.topic), payload, retain=True)
                for message, payload in outgoing
            ),
            return_exceptions=True,
        )
        published = []
        for (message, _), result in zip(outgoing, results, strict=True):
            if isinstance(result, BaseException):
                _LOGGER.warning("limit for %s not confirmed: %s", message.household, result)
                continue
            self.metrics.published[message.type_name] += 1
            published.append(message)
        return published

    async def forget_household(self, household: Household) -> None:
        """After a household is deleted: drop its data kept in memory and clear its
        retained limit on the broker (best effort: a broker that is down keeps it)."""
        self.latest_telemetry.pop(household.household_id, None)
        self.latest_baseline.pop(household.household_id, None)
        if not self.is_connected:
            _LOGGER.warning(
                "retained limit of deleted %s not cleared: broker down", household.household_id
            )
            return
        topic = Topic(household.community_id, household.household_id, Channel.LIMITS)
        try:
            await self._link.publish(str(topic), b"", retain=True, timeout_s=FORGET_TIMEOUT_S)
        except BrokerError as err:
            _LOGGER.warning("retained limit of deleted %s not cleared: %s", topic, err)

    async def send_command(
        self, household_id: str, command: EmergencyCommand | ReleaseCommand
    ) -> Message:
        return await self._send(household_id, command, retain=False)

    async def _send(
        self,
        household_id: str,
        body: LimitUpdate | EmergencyCommand | ReleaseCommand,
        *,
        retain: bool,
    ) -> Message:
        household = await self.run_in_db(self._store.household, household_id)
        if household is None:
            raise StoreError(f"no household {household_id}")
        now = self._clock()
        if isinstance(body, LimitUpdate):
            body = LimitUpdate(limit=_issued_when_sent(body.limit, now))
        message = Message(
            community=household.community_id, household=household_id, sent_at=now, body=body
        )
        payload = encode(message)
        await self.run_in_db(self._store.record_sent, message, payload, now)
        await self._link.publish(str(message.topic), payload, retain=retain)
        self.metrics.published[message.type_name] += 1
        return message
