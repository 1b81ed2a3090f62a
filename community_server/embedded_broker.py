"""An in-process MQTT broker (amqtt) for the demo and small installations.

It enforces what mosquitto's dynamic-security plugin enforces in production: it reads the
same JSON document (`community_server/mosquitto.py`: clients with PBKDF2-SHA512 hashes, each
household bound to its client id, roles with ACLs, deny by default) and rereads it when the
server rewrites it, so a household that joins can connect at once. amqtt speaks MQTT 3.1.1
only, so clients use `mqtt.protocol = "3.1.1"` with it. Its sessions and queues live in
memory: it is not the production broker.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

# amqtt ships no type information.
from amqtt.broker import Broker  # type: ignore[import-untyped]
from amqtt.contexts import (  # type: ignore[import-untyped]
    Action,
    BrokerConfig,
    ListenerConfig,
)
from amqtt.errors import AMQTTError, MQTTError  # type: ignore[import-untyped]
from amqtt.mqtt.protocol.broker_handler import (  # type: ignore[import-untyped]
    BrokerProtocolHandler,
)
from amqtt.plugins.base import (  # type: ignore[import-untyped]
    BaseAuthPlugin,
    BaseTopicPlugin,
)
from amqtt.utils import gen_client_id  # type: ignore[import-untyped]
from paho.mqtt.client import topic_matches_sub

from .mosquitto import DYNSEC_FILE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from amqtt.contexts import BaseContext
    from amqtt.session import Session  # type: ignore[import-untyped]

_LOGGER = logging.getLogger(__name__)
_MAX_ITERATIONS = 1_000_000  # a hostile file must not stall every login


@dataclass(frozen=True, slots=True)
class Account:
    """One client of the document: its PBKDF2 hash, bound client id and allowed topics."""

    salt: bytes
    digest: bytes
    iterations: int
    client_id: str | None = None
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    receive: tuple[str, ...] = ()

    def verify(self, password: str) -> bool:
        candidate = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), self.salt, self.iterations, len(self.digest)
        )
        return hmac.compare_digest(candidate, self.digest)


_ACL_KINDS = {
    "publishClientSend": "publish",
    "subscribeLiteral": "subscribe",
    "subscribePattern": "subscribe",
    "publishClientReceive": "receive",
}


def _role_topics(roles: object) -> dict[str, dict[str, list[str]]]:
    topics: dict[str, dict[str, list[str]]] = {}
    for role in roles if isinstance(roles, list) else []:
        if not isinstance(role, dict) or not isinstance(role.get("rolename"), str):
            continue
        allowed: dict[str, list[str]] = {"publish": [], "subscribe": [], "receive": []}
        acls = role.get("acls")
        for acl in acls if isinstance(acls, list) else []:
            kind = _ACL_KINDS.get(str(acl.get("acltype"))) if isinstance(acl, dict) else None
            if kind and acl.get("allow") is True and isinstance(acl.get("topic"), str):
                allowed[kind].append(acl["topic"])
        topics[role["rolename"]] = allowed
    return topics


def _account(client: dict[str, Any], roles: dict[str, dict[str, list[str]]]) -> Account:
    iterations = client["iterations"]
    if not isinstance(iterations, int) or not 1 <= iterations <= _MAX_ITERATIONS:
        raise ValueError("iterations out of range")
    client_id = client.get("clientid")
    allowed: dict[str, list[str]] = {"publish": [], "subscribe": [], "receive": []}
    for entry in client.get("roles") or []:
        for kind, patterns in roles.get(entry.get("rolename"), {}).items():
            allowed[kind] += patterns
    return Account(
        salt=base64.b64decode(client["salt"], validate=True),
        digest=base64.b64decode(client["password"], validate=True),
        iterations=iterations,
        client_id=client_id if isinstance(client_id, str) and client_id else None,
        publish=tuple(allowed["publish"]),
        subscribe=tuple(allowed["subscribe"]),
        receive=tuple(allowed["receive"]),
    )


def parse_accounts(text: str) -> dict[str, Account]:
    """The clients of a dynamic-security document with their roles' topics.

    Only allowing ACL entries are used (the default denies everything); a client that
    cannot be read is left out, so it cannot log in.
    """
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ValueError("not a dynamic-security document")
    roles = _role_topics(document.get("roles"))
    accounts: dict[str, Account] = {}
    for client in document.get("clients") or []:
        username = client.get("username") if isinstance(client, dict) else None
        if not isinstance(username, str):
            continue
        try:
            accounts[username] = _account(client, roles)
        except KeyError, TypeError, ValueError, AttributeError, binascii.Error:
            _LOGGER.warning("left out broker account %r: unreadable", username[:64])
    return accounts


def pattern_covers(pattern: str, requested: str) -> bool:
    """Whether an ACL pattern allows a topic, or every topic of a subscription filter.

    paho matches the filter as a topic name, so a '+' in it is covered only by a '+' or
    '#' of the pattern; a '#' in it is wider than any pattern level but a '#' at or
    before it, which paho cannot see.
    """
    wanted = requested.split("/")
    if "#" in wanted:
        allowed = pattern.split("/")
        if (allowed.index("#") if "#" in allowed else len(allowed)) > wanted.index("#"):
            return False
    return topic_matches_sub(pattern, requested)


class _WatchedFile[T]:
    """A file parsed again whenever its modification time changes (the server rewrites it)."""

    def __init__(self, path: Path, parse: Callable[[str], T], empty: T) -> None:
        self._path = path
        self._parse = parse
        self._value = empty
        self._stamp: int | None = None

    def current(self) -> T:
        try:
            stamp = self._path.stat().st_mtime_ns
            if stamp != self._stamp:
                self._value = self._parse(self._path.read_text())
                self._stamp = stamp
        except OSError as err:
            _LOGGER.error("cannot read %s: %s", self._path, err.strerror)
        except ValueError:
            _LOGGER.error("cannot parse %s; keeping the accounts read before", self._path)
        return self._value


class AccountsAuth(BaseAuthPlugin):  # type: ignore[misc]
    """Accepts a client whose password matches its hash and whose client id is its own."""

    @dataclass
    class Config:
        accounts_file: str = ""

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self._accounts: _WatchedFile[dict[str, Account]] = _WatchedFile(
            Path(self.config.accounts_file), parse_accounts, {}
        )

    async def authenticate(self, *, session: Session) -> bool | None:
        username = session.username or ""
        account = self._accounts.current().get(username)
        if account is None or not account.verify(session.password or ""):
            _LOGGER.info("refused a connection for user %r", username[:64])
            return False
        if account.client_id is not None and session.client_id != account.client_id:
            _LOGGER.info(
                "refused %r: client id %r is not its own", username[:64], session.client_id[:64]
            )
            return False
        return True


class AccountsTopicCheck(BaseTopicPlugin):  # type: ignore[misc]
    """Publishing, subscribing and receiving each need their own allowing entry."""

    @dataclass
    class Config:
        accounts_file: str = ""

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self._accounts: _WatchedFile[dict[str, Account]] = _WatchedFile(
            Path(self.config.accounts_file), parse_accounts, {}
        )

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool | None:
        if session is None or topic is None or session.username is None:
            return False
        account = self._accounts.current().get(session.username)
        if account is None:
            return False
        match action:
            case Action.PUBLISH:
                patterns = account.publish
            case Action.SUBSCRIBE:
                patterns = account.subscribe
            case _:
                patterns = account.receive
        allowed = any(pattern_covers(pattern, topic) for pattern in patterns)
        if not allowed:
            _LOGGER.info("refused %s on %s for %s", action, topic[:200], session.username[:64])
        return allowed


class _SnapshotDict[K, V](dict[K, V]):
    """Iterates over a copy: amqtt 0.12.1 awaits while iterating its subscriptions, so a
    client subscribing during a broadcast would otherwise abort that broadcast."""

    def __iter__(self) -> Iterator[K]:
        return iter(list(super().keys()))

    def items(self) -> Any:
        return list(super().items())


class _AuthenticatingBroker(Broker):  # type: ignore[misc]
    """amqtt 0.12.1 deletes a clean session's namesake, or takes over the connected client of
    the same client id, before it looks at the credentials: anyone reaching the port could
    wipe the server's or a member's session. This broker checks the credentials (and the
    bound client id) first and refuses before touching any session."""

    async def _initialize_client_session(
        self, reader: Any, writer: Any, remote_address: str, remote_port: int
    ) -> tuple[Any, Session]:
        try:
            handler, session = await BrokerProtocolHandler.init_from_connect(
                reader, writer, self.plugins_manager
            )
        except MQTTError:
            await writer.close()
            raise
        if not await self._authenticate(session, None):
            handler.attach(session, reader, writer)
            await handler.mqtt_connack_authorize(False)
            await writer.close()
            raise AMQTTError(f"refused {remote_address}:{remote_port}")
        # From here on as amqtt does it (broker.py, _initialize_client_session).
        if session.clean_session:
            if session.client_id:
                await self._delete_session(session.client_id)
            else:
                session.client_id = gen_client_id()
            session.parent = 0
        elif session.client_id in self._sessions:
            existing, _ = self._sessions[session.client_id]
            for name in ("will_flag", "will_message", "will_topic", "will_qos", "keep_alive"):
                setattr(existing, name, getattr(session, name))
            existing.username, existing.password = session.username, session.password
            session = existing
            session.parent = 1
        else:
            session.parent = 0
        delay = self.config.get("timeout-disconnect-delay", 0)
        if session.keep_alive > 0 and isinstance(delay, int):
            session.keep_alive += delay
        return handler, session


KICK_CHECK_S = 0.5


@dataclass
class EmbeddedBroker:
    """amqtt on one loopback TCP listener, with the server's generated accounts file."""

    auth_dir: Path
    host: str = "127.0.0.1"
    port: int = 1883
    _broker: Broker | None = field(default=None, init=False)
    _kicker: asyncio.Task[None] | None = field(default=None, init=False)

    async def start(self) -> None:
        plugin = f"{__name__}."
        accounts = {"accounts_file": str(self.auth_dir / DYNSEC_FILE)}
        config = BrokerConfig(
            listeners={"default": ListenerConfig(bind=f"{self.host}:{self.port}")},
            plugins={f"{plugin}AccountsAuth": accounts, f"{plugin}AccountsTopicCheck": accounts},
        )
        self._broker = _AuthenticatingBroker(config)
        self._broker._subscriptions = _SnapshotDict()  # see _SnapshotDict
        await self._broker.start()
        self._kicker = asyncio.create_task(self._disconnect_removed())

    async def _disconnect_removed(self) -> None:
        """Disconnect a client whose account left the file, as mosquitto does when an account
        is deleted (its publishes and deliveries are refused from that moment anyway)."""
        path = self.auth_dir / DYNSEC_FILE
        accounts: _WatchedFile[dict[str, Account]] = _WatchedFile(path, parse_accounts, {})
        while self._broker is not None:
            await asyncio.sleep(KICK_CHECK_S)
            if not path.exists():
                continue
            known = accounts.current()
            for session, handler in list(self._broker._sessions.values()):
                if session.username not in known and session.transitions.is_connected():
                    _LOGGER.info("disconnected %r: its account is gone", session.username[:64])
                    # What amqtt itself does to the old connection of a taken-over session.
                    await handler.handle_connection_closed()
                    await handler.stop()

    async def stop(self) -> None:
        if self._kicker is not None:
            self._kicker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._kicker
            self._kicker = None
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
