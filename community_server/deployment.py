"""`netbewust-server mosquitto …` and the broker steps of other commands.

`mosquitto config` prints mosquitto's configuration; `mosquitto dynsec-init` writes the
dynamic-security plugin's file before mosquitto starts (no broker needed); `mosquitto sync`
makes a running broker's accounts match the database. `household remove` and `serve` call
`remove_account` and `sync_at_start`; `serve` also warns when it talks plain text beyond
loopback.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import pwd
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .broker_link import BrokerError
from .mosquitto import (
    DYNSEC_FILE,
    ServerAccount,
    TlsFiles,
    broker_config,
    find_plugin,
    household_removed,
    manages_accounts,
    sync_accounts,
    write_dynsec_file,
)
from .store import Store, StoreError

if TYPE_CHECKING:
    import argparse

    from .config import ServerConfig
    from .store import BrokerAccount

_LOGGER = logging.getLogger("community_server")
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
DEFAULT_DYNSEC_FILE = Path("/var/lib/mosquitto/netbewust") / DYNSEC_FILE


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mosquitto = commands.add_parser("mosquitto", help="the broker").add_subparsers(
        dest="action", required=True
    )
    init = mosquitto.add_parser(
        "dynsec-init",
        help="write the dynamic-security plugin's file (server account and the households "
        "in the database) while mosquitto is stopped",
    )
    init.add_argument("path", type=Path, nargs="?", default=DEFAULT_DYNSEC_FILE)
    init.add_argument("--owner", help="user who owns the file (mosquitto's), when run as root")
    mosquitto.add_parser(
        "sync", help="make the running broker's accounts match the database (removes stale ones)"
    )
    broker = mosquitto.add_parser(
        "config", help="print the mosquitto.conf the tests run with, for this deployment"
    )
    broker.add_argument("--port", type=int, default=1883)
    broker.add_argument("--bind", default="127.0.0.1", help="listen address")
    broker.add_argument(
        "--data-dir", type=Path, help="persistence location (default: the main file's)"
    )
    broker.add_argument("--dynsec-file", type=Path, default=DEFAULT_DYNSEC_FILE)
    broker.add_argument("--plugin", help="mosquitto_dynamic_security.so (default: found)")
    broker.add_argument("--tls-ca", type=Path)
    broker.add_argument("--tls-cert", type=Path)
    broker.add_argument("--tls-key", type=Path)


def run_without_store(args: argparse.Namespace, config: ServerConfig) -> int | None:
    """`mosquitto config` and `dynsec-init` (which must not create a database); else None."""
    match args.command, getattr(args, "action", None):
        case "mosquitto", "config":
            return _print_config(args)
        case "mosquitto", "dynsec-init":
            return _dynsec_init(args, config)
    return None


def run_with_store(args: argparse.Namespace, config: ServerConfig, store: Store) -> int:
    """`mosquitto sync`."""
    if not manages_accounts(config):
        print("set mosquitto.dynamic_security (or auth_dir) first", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = sync_accounts(config, store)
    except BrokerError as err:
        print(f"netbewust-server: {err}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"broker accounts synced; deleted {len(report.deleted)}", file=sys.stderr)
    return EXIT_FAILURE if report.missing else EXIT_OK


def _print_config(args: argparse.Namespace) -> int:
    tls_paths = (args.tls_ca, args.tls_cert, args.tls_key)
    if any(tls_paths) and not all(tls_paths):
        print("--tls-ca, --tls-cert and --tls-key go together", file=sys.stderr)
        return EXIT_USAGE
    text = broker_config(
        dynsec_file=args.dynsec_file,
        data_dir=args.data_dir,
        port=args.port,
        bind_address=args.bind,
        tls=TlsFiles(*tls_paths) if all(tls_paths) else None,
        plugin=args.plugin or find_plugin(),
    )
    print(text, end="")
    return EXIT_OK


def _dynsec_init(args: argparse.Namespace, config: ServerConfig) -> int:
    if not config.mqtt.password:
        print("set mqtt.password (or NETBEWUST_MQTT_PASSWORD) first", file=sys.stderr)
        return EXIT_USAGE
    owner = None
    if args.owner:
        try:
            entry = pwd.getpwnam(args.owner)
        except KeyError:
            print(f"no user {args.owner}", file=sys.stderr)
            return EXIT_USAGE
        owner = (entry.pw_uid, entry.pw_gid)
    try:
        accounts = _accounts_if_any(Path(config.database.path))
        args.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if owner is not None:
            os.chown(args.path.parent, *owner)  # mosquitto saves the file there itself
        account = ServerAccount(config.mqtt.username, config.mqtt.password)
        write_dynsec_file(args.path, accounts, account, owner)
    except (OSError, StoreError, sqlite3.Error, ValueError) as err:
        print(f"netbewust-server: {err}", file=sys.stderr)
        return EXIT_FAILURE
    print(
        f"wrote {args.path} (server account and {len(accounts)} household(s)); "
        "(re)start mosquitto to load it",
        file=sys.stderr,
    )
    return EXIT_OK


def _accounts_if_any(database: Path) -> list[BrokerAccount]:
    # A fresh installation has no database yet, and this command (run as root) must not
    # create one; SQLite gives files it creates as root the database's owner.
    if not database.exists():
        return []
    store = Store.open(database)
    try:
        return store.broker_accounts()
    finally:
        store.close()


def remove_account(config: ServerConfig, store: Store, username: str) -> bool:
    """After `household remove`: delete its broker account (mosquitto disconnects it)."""
    try:
        household_removed(config, store, username)
    except (BrokerError, OSError) as err:
        print(
            f"netbewust-server: the household is removed but its broker account is not: {err}; "
            "`netbewust-server serve` or `mosquitto sync` deletes it once the broker answers",
            file=sys.stderr,
        )
        return False
    return True


def sync_at_start(config: ServerConfig, store: Store) -> None:
    """`serve`: bring the broker's accounts in line with the database (raises BrokerError)."""
    if manages_accounts(config):
        sync_accounts(config, store)


def _plain_beyond_loopback(host: str) -> bool:
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a name, or "" / "0.0.0.0" style wildcards: reachable from elsewhere


def warn_without_tls(config: ServerConfig) -> None:
    """One log line naming each endpoint that carries credentials in plain text off loopback."""
    plain = []
    http = config.http
    http_tls = http.tls_cert_file and http.tls_key_file
    if http.enabled and not http_tls and _plain_beyond_loopback(http.host):
        plain.append(f"HTTP on {http.host}:{http.port}")
    if not config.mqtt.tls and _plain_beyond_loopback(config.mqtt.host):
        plain.append(f"MQTT to {config.mqtt.host}:{config.mqtt.port}")
    public_host = http.public_mqtt_host or config.mqtt.host
    if http.enabled and not http.public_mqtt_tls and _plain_beyond_loopback(public_host):
        plain.append(f"MQTT for households at {public_host}")
    if plain:
        _LOGGER.warning(
            "without TLS beyond loopback: %s; passwords and member data travel in plain text",
            ", ".join(plain),
        )
