"""Broker accounts and ACLs (mosquitto's dynamic-security plugin) and mosquitto's configuration.

Accounts live in mosquitto's dynamic-security plugin, never in a password file: no file for
mosquitto to reread and no SIGHUP from the server (which runs as another user). Before
mosquitto first starts, `netbewust-server mosquitto dynsec-init` writes the plugin's JSON
file: the server account with its role, plus the households already in the database. While
both run, the server adds a household when it joins and deletes it when it is removed over
`$CONTROL/dynamic-security/v1`; deleting a client makes mosquitto disconnect it at once.

Every household account is bound to its client id (its household id): mosquitto refuses the
household under any other client id, so nobody can take over (and wipe) the session of the
server or of another member. Its role may publish only its own household channels, and
subscribe to and receive only its own limits, commands and receipts; the server's role has the
protocol prefix and the plugin's control topics. Everything else is denied.

The embedded broker reads the same JSON document from `mosquitto.auth_dir`; the server
rewrites that file from the database after every change instead.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import secrets
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from netbewust_adapters.mqtt import stop_network_thread
from netbewust_core.protocol.messages import (
    HOUSEHOLD_CHANNELS,
    SERVER_CHANNELS,
    TOPIC_PREFIX,
    Topic,
)

from .broker_link import BrokerError
from .credentials import hash_password
from .private_files import write_private

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

    from .config import MqttConfig, ServerConfig
    from .store import BrokerAccount, HouseholdCredentials, Store

_LOGGER = logging.getLogger(__name__)
DYNSEC_FILE = "dynamic-security.json"
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
SERVER_ROLE = "netbewust-server"
HOUSEHOLD_ROLE_PREFIX = "netbewust-household:"
# Debian and Ubuntu (per architecture), then the eclipse-mosquitto image and source builds.
PLUGIN_LOCATIONS = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/arm-linux-gnueabihf/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
)
DEFAULT_PLUGIN = PLUGIN_LOCATIONS[0]


@dataclass(frozen=True, slots=True)
class ServerAccount:
    username: str
    password: str

    def __repr__(self) -> str:
        return f"ServerAccount({self.username!r}, password=***)"


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path


def find_plugin() -> str:
    """The dynamic-security plugin of the installed mosquitto (Debian's path if none found)."""
    return next((path for path in PLUGIN_LOCATIONS if Path(path).is_file()), DEFAULT_PLUGIN)


def _check_username(username: str) -> None:
    # Wildcards, separators or control characters would make ACL topics match other members.
    if not username or len(username) > 128 or not username.isprintable():
        raise ValueError(f"unusable broker username {username!r}")
    if any(char in username for char in ":#+/ "):
        raise ValueError(f"unusable broker username {username!r}")


def household_role_name(username: str) -> str:
    return f"{HOUSEHOLD_ROLE_PREFIX}{username}"


def _acl(acltype: str, topic: str) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "allow": True}


def server_role() -> dict[str, Any]:
    prefix = f"{TOPIC_PREFIX}/#"
    control = "$CONTROL/dynamic-security/#"
    return {
        "rolename": SERVER_ROLE,
        "acls": [
            _acl(kind, topic)
            for topic in (prefix, control)
            for kind in ("publishClientSend", "publishClientReceive", "subscribePattern")
        ],
    }


def household_role(username: str, community_id: str, household_id: str) -> dict[str, Any]:
    """Publish its own household channels; subscribe to and receive its own server channels."""
    _check_username(username)
    acls = [
        _acl("publishClientSend", str(Topic(community_id, household_id, channel)))
        for channel in HOUSEHOLD_CHANNELS
    ]
    for channel in SERVER_CHANNELS:
        topic = str(Topic(community_id, household_id, channel))
        acls += [_acl("subscribeLiteral", topic), _acl("publishClientReceive", topic)]
    return {"rolename": household_role_name(username), "acls": acls}


def _hash_fields(password_hash: str) -> dict[str, Any]:
    """mosquitto's `$7$iterations$salt$hash` (PBKDF2-SHA512) as the plugin stores it."""
    parts = password_hash.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        raise ValueError("not a mosquitto $7$ password hash")
    try:
        base64.b64decode(parts[3], validate=True)
        base64.b64decode(parts[4], validate=True)
    except binascii.Error:
        raise ValueError("not a mosquitto $7$ password hash") from None
    return {"password": parts[4], "salt": parts[3], "iterations": int(parts[2])}


def dynsec_document(accounts: Sequence[BrokerAccount], server: ServerAccount) -> dict[str, Any]:
    """The plugin's JSON configuration: deny by default, the server, every household."""
    _check_username(server.username)
    clients: list[dict[str, Any]] = [
        {
            "username": server.username,
            **_hash_fields(hash_password(server.password)),
            "roles": [{"rolename": SERVER_ROLE}],
        }
    ]
    roles = [server_role()]
    for account in accounts:
        role = household_role(account.username, account.community_id, account.household_id)
        roles.append(role)
        clients.append(
            {
                "username": account.username,
                "clientid": account.household_id,
                **_hash_fields(account.password_hash),
                "roles": [{"rolename": role["rolename"]}],
            }
        )
    return {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": clients,
        "groups": [],
        "roles": roles,
    }


def write_dynsec_file(
    path: Path,
    accounts: Sequence[BrokerAccount],
    server: ServerAccount,
    owner: tuple[int, int] | None = None,
) -> Path:
    """Write the plugin's file atomically, 0600 (it holds password hashes)."""
    text = json.dumps(dynsec_document(accounts, server), indent=1) + "\n"
    write_private(path, text.encode(), owner=owner)
    return path


def broker_config(
    *,
    dynsec_file: Path,
    data_dir: Path | None,
    port: int,
    bind_address: str = "127.0.0.1",
    tls: TlsFiles | None = None,
    plugin: str = DEFAULT_PLUGIN,
    max_queued_messages: int = 100_000,
    autosave_changes: int = 100,
) -> str:
    """A mosquitto.conf for one listener, as the tests run it and production should.

    Without `data_dir` the persistence location is left to the distribution's main file
    (Debian's sets it, and mosquitto refuses a second one).
    """
    lines = [
        "# Generated by netbewust-server.",
        "per_listener_settings false",
        "allow_anonymous false",
        f"plugin {plugin}",
        f"plugin_opt_config_file {dynsec_file}",
        "persistence true",
        *([f"persistence_location {data_dir}/"] if data_dir else []),
        # Save after this many changes (queued messages, subscriptions, retained ones), not
        # every 30 s: a crash loses at most that many acknowledged messages (measured by
        # bench/broker_persistence.py; "QoS and broker persistence" in docs/protocol.md).
        "autosave_on_changes true",
        f"autosave_interval {autosave_changes}",
        # Offline persistent sessions (the server while it restarts) keep their messages.
        f"max_queued_messages {max_queued_messages}",
        "max_inflight_messages 100",
        "persistent_client_expiration 7d",
        "max_packet_size 131072",
        f"listener {port} {bind_address}",
    ]
    if tls is not None:
        lines += [
            f"cafile {tls.ca_file}",
            f"certfile {tls.cert_file}",
            f"keyfile {tls.key_file}",
            "tls_version tlsv1.2",
        ]
    return "\n".join(lines) + "\n"


# --- the plugin's control topic --------------------------------------------------------


def add_household_commands(credentials: HouseholdCredentials) -> list[dict[str, Any]]:
    role = household_role(credentials.username, credentials.community_id, credentials.household_id)
    return [
        {"command": "createRole", **role},
        {
            "command": "createClient",
            "username": credentials.username,
            "password": credentials.password,
            "clientid": credentials.household_id,
            "roles": [{"rolename": role["rolename"]}],
        },
    ]


def _reset_household_commands(credentials: HouseholdCredentials) -> list[dict[str, Any]]:
    # Its role came with the earlier createClient; mosquitto 2.0 errs on adding it twice.
    username = credentials.username
    return [
        {"command": "setClientPassword", "username": username, "password": credentials.password},
        {"command": "setClientId", "username": username, "clientid": credentials.household_id},
    ]


def remove_household_commands(username: str) -> list[dict[str, Any]]:
    # Deleting the client disconnects every connection it has.
    return [
        {"command": "deleteClient", "username": username},
        {"command": "deleteRole", "rolename": household_role_name(username)},
    ]


class _ControlSession:
    """One short MQTT connection as the server account, for the plugin's commands."""

    def __init__(self, settings: MqttConfig) -> None:
        self._settings = settings
        self._correlation = secrets.token_hex(8)
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._answered = threading.Event()
        self._refusal: str | None = None
        self._responses: list[dict[str, Any]] = []
        mqtt5 = settings.protocol == "5"
        # Another client id than the server's own, so the serving process keeps its session.
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"{settings.client_id}-control-{secrets.token_hex(4)}",
            protocol=MQTTProtocolVersion.MQTTv5 if mqtt5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if mqtt5 else True,
        )
        self._client.username_pw_set(settings.username, settings.password)
        if settings.tls:
            self._client.tls_set(
                ca_certs=settings.tls_ca_file or None,
                certfile=settings.tls_cert_file or None,
                keyfile=settings.tls_key_file or None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def _on_connect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: object,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._refusal = str(reason)
        self._connected.set()

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _mid: int,
        reasons: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        if any(reason.is_failure for reason in reasons):
            self._refusal = "the control topic's responses may not be read"
        self._subscribed.set()

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: Any) -> None:
        try:
            answers = json.loads(message.payload)["responses"]
        except ValueError, KeyError, TypeError:
            return
        mine = [
            answer
            for answer in answers
            if isinstance(answer, dict) and answer.get("correlationData") == self._correlation
        ]
        if mine:
            self._responses = mine
            self._answered.set()

    def run(self, commands: Sequence[dict[str, Any]], timeout_s: float) -> list[dict[str, Any]]:
        where = f"{self._settings.host}:{self._settings.port}"
        try:
            self._client.connect(self._settings.host, self._settings.port, keepalive=30)
        except OSError as err:
            raise BrokerError(f"cannot connect to {where}: {err}") from None
        self._client.loop_start()
        try:
            if not self._connected.wait(timeout_s) or self._refusal:
                raise BrokerError(f"{where} refused the server account: {self._refusal}")
            self._client.subscribe(RESPONSE_TOPIC, qos=1)
            if not self._subscribed.wait(timeout_s) or self._refusal:
                raise BrokerError(f"{where}: {self._refusal or 'no answer to a subscription'}")
            tagged = [{**command, "correlationData": self._correlation} for command in commands]
            self._client.publish(CONTROL_TOPIC, json.dumps({"commands": tagged}), qos=1)
            if not self._answered.wait(timeout_s):
                raise BrokerError(
                    f"{where} did not answer on {RESPONSE_TOPIC}: is mosquitto's "
                    "dynamic-security plugin loaded?"
                )
            return self._responses
        finally:
            with contextlib.suppress(OSError):
                self._client.disconnect()
            stop_network_thread(self._client)


def control(
    settings: MqttConfig, commands: Sequence[dict[str, Any]], timeout_s: float = 10.0
) -> list[dict[str, Any]]:
    """Send commands to mosquitto's dynamic-security plugin; its answers, in order (blocking).

    Each answer is the command's name, an optional "error" and optional "data".
    """
    return _ControlSession(settings).run(commands, timeout_s)


def _failures(
    answers: Iterable[dict[str, Any]], tolerated: frozenset[str] = frozenset()
) -> list[str]:
    return [
        f"{answer.get('command')}: {answer['error']}"
        for answer in answers
        if answer.get("error") and answer["error"] not in tolerated
    ]


# --- what the server and the command line call -----------------------------------------


def manages_accounts(config: ServerConfig) -> bool:
    return config.mosquitto.dynamic_security or bool(config.mosquitto.auth_dir)


def _rewrite_file(config: ServerConfig, store: Store) -> None:
    account = ServerAccount(config.mqtt.username, config.mqtt.password)
    directory = Path(config.mosquitto.auth_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_dynsec_file(directory / DYNSEC_FILE, store.broker_accounts(), account)


def household_added(config: ServerConfig, store: Store, credentials: HouseholdCredentials) -> None:
    """Give a household that just joined its broker account (blocking; raises BrokerError).

    Repeating it is harmless: an account an earlier attempt created (its answer lost) gets
    this password, client id and role again.
    """
    if config.mosquitto.dynamic_security:
        members = {account.household_id for account in store.broker_accounts()}
        if credentials.household_id not in members:
            return  # removed before its account could be made (a retry came too late)
        answers = control(config.mqtt, add_household_commands(credentials))
        if any(answer.get("error") == "Client already exists" for answer in answers):
            answers = control(config.mqtt, _reset_household_commands(credentials))
        if failures := _failures(answers, frozenset({"Role already exists"})):
            raise BrokerError(f"mosquitto refused {credentials.username}: {'; '.join(failures)}")
        _LOGGER.info("broker account for %s created", credentials.username)
    elif config.mosquitto.auth_dir:
        _rewrite_file(config, store)


def household_removed(config: ServerConfig, store: Store, username: str) -> None:
    """Delete a removed household's broker account; mosquitto disconnects it (blocking)."""
    if config.mosquitto.dynamic_security:
        answers = control(config.mqtt, remove_household_commands(username))
        absent = frozenset({"Client not found", "Role not found"})
        if failures := _failures(answers, absent):
            raise BrokerError(f"mosquitto kept {username}: {'; '.join(failures)}")
        _LOGGER.info("broker account for %s deleted", username)
    elif config.mosquitto.auth_dir:
        _rewrite_file(config, store)


RETRY_INTERVAL_S = 2.0
_RETRYING: set[asyncio.Task[None]] = set()  # referenced until done


async def apply_when_reachable(
    change: Callable[..., None], config: ServerConfig, store: Store, *args: Any
) -> None:
    """Apply a join's or a removal's account change off the event loop; while the broker
    cannot be reached, keep retrying in the background instead of losing it.

    A joining household's password lives only in this process until its account exists: if
    the server stops first, `serve` reports the household as missing at its next start.
    """
    try:
        await asyncio.to_thread(change, config, store, *args)
    except (OSError, BrokerError) as err:
        _LOGGER.error(
            "broker account change postponed, retrying every %gs: %s", RETRY_INTERVAL_S, err
        )
        task = asyncio.create_task(_retry(change, config, store, *args))
        _RETRYING.add(task)
        task.add_done_callback(_RETRYING.discard)


async def _retry(
    change: Callable[..., None], config: ServerConfig, store: Store, *args: Any
) -> None:
    while True:
        await asyncio.sleep(RETRY_INTERVAL_S)
        try:
            await asyncio.to_thread(change, config, store, *args)
        except OSError, BrokerError:
            continue
        _LOGGER.info("broker account change applied after all")
        return


@dataclass(frozen=True, slots=True)
class SyncReport:
    deleted: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


def sync_accounts(config: ServerConfig, store: Store) -> SyncReport:
    """Make the broker's accounts match the database (at `serve` start and on demand).

    Accounts of households no longer in the database are deleted. The plugin takes only a
    password, never a hash, so a household in the database without a broker account (a
    restored backup, a lost plugin file) cannot be recreated live: it is reported, and
    `mosquitto dynsec-init` with mosquitto stopped writes it back.
    """
    if not config.mosquitto.dynamic_security:
        if config.mosquitto.auth_dir:
            _rewrite_file(config, store)
        return SyncReport()
    listed = control(config.mqtt, [{"command": "listRoles", "count": -1}])
    if failures := _failures(listed):
        raise BrokerError(f"mosquitto: {'; '.join(failures)}")
    roles = set(listed[0].get("data", {}).get("roles", []))
    if SERVER_ROLE not in roles:
        _LOGGER.error("the broker has no %s role: run `mosquitto dynsec-init`", SERVER_ROLE)
    on_broker = {
        role.removeprefix(HOUSEHOLD_ROLE_PREFIX)
        for role in roles
        if isinstance(role, str) and role.startswith(HOUSEHOLD_ROLE_PREFIX)
    }
    members = {account.username for account in store.broker_accounts()}
    stale = sorted(on_broker - members)
    for username in stale:
        household_removed(config, store, username)
    missing = tuple(sorted(members - on_broker))
    if missing:
        _LOGGER.error(
            "%d household(s) have no broker account and cannot connect (%s); stop mosquitto "
            "and run `netbewust-server mosquitto dynsec-init` to write them back",
            len(missing),
            ", ".join(missing[:10]),
        )
    return SyncReport(tuple(stale), missing)
