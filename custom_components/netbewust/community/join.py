"""The community server's HTTP join: a one-time join code in, MQTT credentials out.

Before redeeming the code the join reads the server's public info document
(`GET /api/v1/health`) for the server's identity, `server_id`, which the membership
keeps: zeroconf discovery recognises the server by it at another address.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from ..core.protocol.messages import PROTOCOL_VERSION, ProtocolError, check_id

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

JOIN_PATH = "/api/v1/join"
INFO_PATH = "/api/v1/health"
JOIN_TIMEOUT_S = 10.0
MAX_JOIN_CODE_LENGTH = 64
_SERVER_ID = re.compile(r"[0-9a-f]{32}")


def valid_server_id(value: object) -> bool:
    """Whether `value` has a server id's form: 32 lowercase hex digits."""
    return isinstance(value, str) and _SERVER_ID.fullmatch(value) is not None


class JoinError(Exception):
    """Joining failed; `code` is the config flow's error key."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttSettings:
    """Where and as whom the household connects to the community's broker."""

    host: str
    port: int
    tls: bool
    client_id: str
    username: str
    password: str = field(repr=False)
    # The cooperative's own CA (PEM) when its certificates are not publicly trusted.
    ca_pem: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Membership:
    community: str
    household: str
    mqtt: MqttSettings
    # The server's identity from its info document; None from a server without one.
    server_id: str | None = None


def validate_ca_pem(text: str) -> str:
    """The PEM text if OpenSSL accepts it as trust anchors, else JoinError("invalid_ca_cert")."""
    pem = text.strip()
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise JoinError("invalid_ca_cert", "no PEM certificate found")
    try:
        trust_context(pem)
    except (ssl.SSLError, ValueError) as err:
        raise JoinError("invalid_ca_cert", str(err)) from None
    return pem


def trust_context(ca_pem: str) -> ssl.SSLContext:
    """A client context that trusts only the cooperative's CA (no system store)."""
    return ssl.create_default_context(cadata=ca_pem)


def normalise_url(url: str) -> str:
    """The API base URL, or JoinError("invalid_url") when it is not http(s)://host[:port]."""
    text = url.strip().rstrip("/")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise JoinError("invalid_url", "not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise JoinError("invalid_url", "use http://host:port or https://host:port")
    return f"{parts.scheme}://{parts.netloc}"


def parse_join_answer(document: object) -> Membership:
    """Validate the server's 201 answer; anything unexpected is a JoinError."""
    try:
        return _parse(document)
    except (KeyError, TypeError, ValueError, ProtocolError) as err:
        raise JoinError("invalid_answer", f"unexpected join answer: {err}") from None


def _parse(document: object) -> Membership:
    if not isinstance(document, dict):
        raise TypeError("not an object")
    if document["protocol_version"] != PROTOCOL_VERSION:
        raise ValueError(f"protocol {document['protocol_version']!r} is not supported")
    community, household = str(document["community"]), str(document["household"])
    check_id(community, "community")
    check_id(household, "household")
    mqtt: Mapping[str, Any] = document["mqtt"]
    port = mqtt["port"]
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError("mqtt port out of range")
    if not isinstance(mqtt["tls"], bool):
        raise TypeError("mqtt tls must be true or false")
    settings = MqttSettings(
        host=_text(mqtt["host"]),
        port=port,
        tls=mqtt["tls"],
        client_id=_text(mqtt["client_id"]),
        username=_text(mqtt["username"]),
        password=_text(mqtt["password"]),
    )
    return Membership(community=community, household=household, mqtt=settings)


def _text(value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 256:
        raise ValueError("expected a non-empty string")
    return value


async def async_join(
    session: aiohttp.ClientSession,
    base_url: str,
    join_code: str,
    trust: ssl.SSLContext | None = None,
) -> Membership:
    """Redeem `join_code` at the server; every failure is a JoinError with a flow error key.

    `trust` replaces the system's CA store for HTTPS (a cooperative's own CA).
    """
    code = join_code.strip()
    if not 0 < len(code) <= MAX_JOIN_CODE_LENGTH:
        raise JoinError("invalid_join_code", "a join code has 1-64 characters")
    # The identity first: a server whose info document is unusable spends no code.
    server_id = await async_server_id(session, base_url, trust)
    async with (
        _request("the answer is not JSON"),
        session.post(
            f"{base_url}{JOIN_PATH}", json={"join_code": code}, ssl=trust or True
        ) as response,
    ):
        if response.status == 403:
            # The server does not say whether the code was wrong, used or expired.
            raise JoinError("invalid_join_code", "refused by the server")
        if response.status != 201:
            raise JoinError("cannot_connect", f"the server answered {response.status}")
        document = await response.json(content_type=None)
    return replace(parse_join_answer(document), server_id=server_id)


async def async_server_id(
    session: aiohttp.ClientSession, base_url: str, trust: ssl.SSLContext | None = None
) -> str | None:
    """The server's identity from its public info document; no credentials are sent.

    None when the document has no `server_id` (a server from before it had one); one of
    another form is `invalid_answer`; other failures are JoinErrors as for the join.
    """
    async with (
        _request("the info document is not JSON"),
        session.get(f"{base_url}{INFO_PATH}", ssl=trust or True, allow_redirects=False) as response,
    ):
        if response.status != 200:
            raise JoinError("cannot_connect", f"the server answered {response.status}")
        document = await response.json(content_type=None)
    return parse_server_id(document)


@contextlib.asynccontextmanager
async def _request(not_json: str) -> AsyncIterator[None]:
    """A request to the server within `JOIN_TIMEOUT_S`, its failures as JoinErrors."""
    try:
        async with asyncio.timeout(JOIN_TIMEOUT_S):
            yield
    except aiohttp.ClientConnectorCertificateError as err:
        raise JoinError("tls_error", str(err)) from None
    except (aiohttp.ClientSSLError, ssl.SSLError) as err:
        raise JoinError("tls_error", str(err)) from None
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        raise JoinError("cannot_connect", str(err) or type(err).__name__) from None
    except ValueError:
        raise JoinError("invalid_answer", not_json) from None


def parse_server_id(document: object) -> str | None:
    """The `server_id` of an info document: None when absent, JoinError when malformed."""
    if not isinstance(document, dict):
        raise JoinError("invalid_answer", "the info document is not an object")
    server_id = document.get("server_id")
    if server_id is None:
        return None
    if not valid_server_id(server_id):
        raise JoinError("invalid_answer", "the server's id is not 32 hex digits")
    return str(server_id)
