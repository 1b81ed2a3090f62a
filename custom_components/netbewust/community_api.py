"""The community server's HTTP join: a one-time join code in, MQTT credentials out."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from .core.protocol import PROTOCOL_VERSION, ProtocolError, check_id

if TYPE_CHECKING:
    from collections.abc import Mapping

JOIN_PATH = "/api/v1/join"
JOIN_TIMEOUT_S = 10.0
MAX_JOIN_CODE_LENGTH = 64


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
    try:
        async with asyncio.timeout(JOIN_TIMEOUT_S):
            async with session.post(
                f"{base_url}{JOIN_PATH}", json={"join_code": code}, ssl=trust or True
            ) as response:
                if response.status == 403:
                    # The server does not say whether the code was wrong, used or expired.
                    raise JoinError("invalid_join_code", "refused by the server")
                if response.status != 201:
                    raise JoinError("cannot_connect", f"the server answered {response.status}")
                document = await response.json(content_type=None)
    except aiohttp.ClientConnectorCertificateError as err:
        raise JoinError("tls_error", str(err)) from None
    except (aiohttp.ClientSSLError, ssl.SSLError) as err:
        raise JoinError("tls_error", str(err)) from None
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        raise JoinError("cannot_connect", str(err) or type(err).__name__) from None
    except ValueError:
        raise JoinError("invalid_answer", "the answer is not JSON") from None
    return parse_join_answer(document)
