"""An in-process MQTT broker (amqtt) for the demo and small installations.

It enforces exactly what mosquitto enforces in production: it reads the same
generated password file (mosquitto's PBKDF2 `$7$` hashes) and the same ACL file, and
rereads them when they change, so a household that joins can connect at once. amqtt
speaks MQTT 3.1.1 only, so clients use `mqtt.protocol = "3.1.1"` with it. Its sessions
and queues live in memory: it is not the production broker.
"""

from __future__ import annotations

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
from amqtt.plugins.base import (  # type: ignore[import-untyped]
    BaseAuthPlugin,
    BaseTopicPlugin,
)

from .credentials import verify_password
from .mosquitto import ACL_FILE, PASSWORD_FILE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from amqtt.contexts import BaseContext
    from amqtt.session import Session  # type: ignore[import-untyped]

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Acl:
    """Topic patterns a user may read and write, as mosquitto's `topic read|write|readwrite`."""

    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()


def parse_password_file(text: str) -> dict[str, str]:
    users: dict[str, str] = {}
    for line in text.splitlines():
        username, separator, hashed = line.strip().partition(":")
        if separator and username and not username.startswith("#"):
            users[username] = hashed
    return users


def parse_acl_file(text: str) -> dict[str, Acl]:
    """The `user` / `topic` subset of mosquitto's ACL syntax that the server generates."""
    read: dict[str, list[str]] = {}
    write: dict[str, list[str]] = {}
    user: str | None = None
    for raw in text.splitlines():
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "user" and len(words) == 2:
            user = words[1]
            read.setdefault(user, [])
            write.setdefault(user, [])
        elif words[0] == "topic" and user is not None and len(words) in (2, 3):
            access, pattern = ("readwrite", words[1]) if len(words) == 2 else words[1:]
            if access in ("read", "readwrite"):
                read[user].append(pattern)
            if access in ("write", "readwrite"):
                write[user].append(pattern)
        else:
            _LOGGER.warning("ignored an ACL line the embedded broker does not understand")
    return {name: Acl(tuple(read[name]), tuple(write[name])) for name in read}


def pattern_covers(pattern: str, requested: str) -> bool:
    """Whether an ACL pattern allows a topic, or every topic of a subscription filter."""
    allowed, wanted = pattern.split("/"), requested.split("/")
    for index, level in enumerate(allowed):
        if level == "#":
            return True
        if index >= len(wanted):
            return False
        if wanted[index] == "#":
            return False  # a wider filter than the pattern
        if level == "+":
            continue
        if level != wanted[index]:
            return False
    return len(wanted) == len(allowed)


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
        return self._value


class PasswordFileAuth(BaseAuthPlugin):  # type: ignore[misc]
    """Accepts a user whose password matches the `$7$` hash in the generated password file."""

    @dataclass
    class Config:
        password_file: str = ""

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        path = Path(self.config.password_file)
        self._users: _WatchedFile[dict[str, str]] = _WatchedFile(path, parse_password_file, {})

    async def authenticate(self, *, session: Session) -> bool | None:
        hashed = self._users.current().get(session.username or "")
        if hashed is None or not verify_password(session.password or "", hashed):
            _LOGGER.info("refused a connection for user %r", (session.username or "")[:64])
            return False
        return True


class AclFileTopicCheck(BaseTopicPlugin):  # type: ignore[misc]
    """Publish needs `write`; subscribing and receiving need `read` (deny by default)."""

    @dataclass
    class Config:
        acl_file: str = ""

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        path = Path(self.config.acl_file)
        self._acl: _WatchedFile[dict[str, Acl]] = _WatchedFile(path, parse_acl_file, {})

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool | None:
        if session is None or topic is None or session.username is None:
            return False
        acl = self._acl.current().get(session.username)
        if acl is None:
            return False
        patterns = acl.write if action == Action.PUBLISH else acl.read
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


@dataclass
class EmbeddedBroker:
    """amqtt on one loopback TCP listener, with the server's generated auth files."""

    auth_dir: Path
    host: str = "127.0.0.1"
    port: int = 1883
    _broker: Broker | None = field(default=None, init=False)

    async def start(self) -> None:
        plugin = f"{__name__}."
        config = BrokerConfig(
            listeners={"default": ListenerConfig(bind=f"{self.host}:{self.port}")},
            plugins={
                f"{plugin}PasswordFileAuth": {"password_file": str(self.auth_dir / PASSWORD_FILE)},
                f"{plugin}AclFileTopicCheck": {"acl_file": str(self.auth_dir / ACL_FILE)},
            },
        )
        self._broker = Broker(config)
        self._broker._subscriptions = _SnapshotDict()  # see _SnapshotDict
        await self._broker.start()

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
