"""`netbewust-server`: run the community server and administer its members."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import signal
import sqlite3
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from . import deployment
from .accounts import MAX_PASSWORD, MIN_OPERATOR_PASSWORD
from .broker_link import BrokerError
from .config import ConfigError, ServerConfig, load_config
from .demo import DemoOptions, run_demo
from .log_limits import install_safe_logging
from .neighbourhood.command import add_commands as add_simulator_commands
from .neighbourhood.command import run_command as run_simulator
from .passwords import OPERATOR_HASHER
from .private_files import write_private
from .serving import serving
from .settlement_store import SettlementError
from .store import Store, StoreError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

_LOGGER = logging.getLogger("community_server")
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netbewust-server",
        description="Netbewust community server for the households behind one transformer.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="TOML configuration file (default: $NETBEWUST_CONFIG; settings also from "
        "NETBEWUST_<SECTION>_<KEY> variables)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the server until SIGINT or SIGTERM")
    demo = commands.add_parser(
        "demo",
        help="server, embedded broker, dashboard and simulated households on loopback",
    )
    demo.add_argument("--households", type=int, default=50)
    demo.add_argument("--speed", type=float, default=1.0, help="profile time per real second")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--data-dir", type=Path, help="default: a new temporary directory")
    demo.add_argument("--http-port", type=int, default=8480)
    demo.add_argument("--mqtt-port", type=int, default=0, help="default: any free port")
    demo.add_argument("--cap-kw-per-household", type=float, default=1.6)
    demo.add_argument("--profile-start", default="17:30", help="local time the profiles start")
    demo.add_argument(
        "--no-collective",
        dest="collective",
        action="store_false",
        help="leave the collective day plan (on demo prices, not Nord Pool) off",
    )
    demo.add_argument(
        "--no-settlement",
        dest="settlement",
        action="store_false",
        help="skip the simulated, settled yesterday printed after startup",
    )
    backup = commands.add_parser("backup", help="online copy of the database, while serving")
    backup.add_argument("path", type=Path)

    community = commands.add_parser("community", help="communities").add_subparsers(
        dest="action", required=True
    )
    create = community.add_parser("create", help="create a community")
    create.add_argument("community_id", help="lower-case id, e.g. wijk-noord")
    create.add_argument("--name", required=True)

    transformer = commands.add_parser("transformer", help="transformers").add_subparsers(
        dest="action", required=True
    )
    add = transformer.add_parser("create", help="add a transformer to a community")
    add.add_argument("transformer_id")
    add.add_argument("--community", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--capacity-w", type=float, help="rated capacity in W")

    joincode = commands.add_parser("joincode", help="household join codes").add_subparsers(
        dest="action", required=True
    )
    issue = joincode.add_parser("issue", help="issue a single-use join code")
    issue.add_argument("--community", required=True)
    issue.add_argument("--transformer")
    issue.add_argument("--valid-hours", type=float, help="default from the configuration")
    revoke = joincode.add_parser("revoke", help="revoke an unused join code")
    revoke.add_argument("code")

    household = commands.add_parser("household", help="households").add_subparsers(
        dest="action", required=True
    )
    listing = household.add_parser("list", help="list households and their state")
    listing.add_argument("--community")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    remove = household.add_parser("remove", help="remove a household and all its data")
    remove.add_argument("household_id")
    export = household.add_parser("export", help="everything stored about a household, as JSON")
    export.add_argument("household_id")
    export.add_argument("--output", type=Path, help="write to this file (0600), not stdout")

    operator = commands.add_parser(
        "operator", help="operator accounts (dashboard login)"
    ).add_subparsers(dest="action", required=True)
    for action, text in (("add", "create an operator"), ("passwd", "set a new password")):
        account = operator.add_parser(action, help=text)
        account.add_argument("username")
        account.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of stdin instead of prompting",
        )
    operator.add_parser("remove", help="remove an operator (ends their sessions)").add_argument(
        "username"
    )
    operator.add_parser("list", help="list operators")

    settlement = commands.add_parser(
        "settlement", help="monthly settlement (docs/settlement.md)"
    ).add_subparsers(dest="action", required=True)
    close = settlement.add_parser(
        "close", help="close an ended month: statements that never change, and corrections"
    )
    close.add_argument("community_id")
    close.add_argument("period", help="the month, YYYY-MM (Europe/Amsterdam)")
    close.add_argument("--json", action="store_true", help="print the stored documents")

    deployment.add_commands(commands)
    add_simulator_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    if args.command in {"simulate", "hosting-capacity"}:
        return run_simulator(args)
    config_path = args.config or (
        Path(environ["NETBEWUST_CONFIG"]) if "NETBEWUST_CONFIG" in environ else None
    )
    try:
        config = load_config(config_path, environ)
    except ConfigError as err:
        print(f"netbewust-server: {err}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    install_safe_logging()  # no control characters from a request or message in the log
    if (done := deployment.run_without_store(args, config)) is not None:
        return done
    try:
        store = Store.open(config.database.path)
    except (StoreError, sqlite3.Error, OSError) as err:
        print(f"netbewust-server: cannot open {config.database.path}: {err}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        return _run(args, config, store)
    except (StoreError, OSError) as err:
        print(f"netbewust-server: {err}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        store.close()


def _run(args: argparse.Namespace, config: ServerConfig, store: Store) -> int:
    now = datetime.now(UTC)
    match args.command, getattr(args, "action", None):
        case "serve", _:
            return _serve(config, store)
        case "backup", _:
            if args.path.resolve() == Path(config.database.path).resolve():
                print("the backup cannot replace the database itself", file=sys.stderr)
                return EXIT_USAGE
            store.backup(args.path)
            print(f"backed up {config.database.path} to {args.path}")
        case "community", "create":
            store.create_community(args.community_id, args.name, now)
            print(f"created community {args.community_id}")
        case "transformer", "create":
            store.create_transformer(
                args.transformer_id, args.community, args.name, args.capacity_w
            )
            print(f"created transformer {args.transformer_id} in {args.community}")
        case "joincode", "issue":
            hours = (
                config.community.join_code_valid_hours
                if args.valid_hours is None
                else args.valid_hours
            )
            issued = store.issue_join_code(
                args.community, now, timedelta(hours=hours), args.transformer
            )
            print(issued.code)
            print(f"valid until {issued.expires_at.isoformat(timespec='minutes')}", file=sys.stderr)
        case "joincode", "revoke":
            if not store.revoke_join_code(args.code, now):
                print("no such unused join code", file=sys.stderr)
                return EXIT_FAILURE
            print("revoked")
        case "household", "list":
            _list_households(store, args.community, as_json=args.json)
        case "household", "remove":
            usernames = [
                account.username
                for account in store.broker_accounts()
                if account.household_id == args.household_id
            ]
            if not store.remove_household(args.household_id):
                print(f"no household {args.household_id}", file=sys.stderr)
                return EXIT_FAILURE
            print(f"removed {args.household_id} and all its data")
            if not all(deployment.remove_account(config, store, name) for name in usernames):
                return EXIT_FAILURE
        case "household", "export":
            document = store.export_household(args.household_id)
            if document is None:
                print(f"no household {args.household_id}", file=sys.stderr)
                return EXIT_FAILURE
            _write_export(json.dumps(document, indent=2), args.output)
        case "operator", "add" | "passwd":
            return _set_operator(store, args, now)
        case "operator", "remove":
            if not store.remove_operator(args.username):
                print(f"no operator {args.username}", file=sys.stderr)
                return EXIT_FAILURE
            print(f"removed operator {args.username}")
        case "operator", "list":
            for account in store.operators():
                changed = account.password_changed_at.isoformat(timespec="minutes")
                print(f"{account.username:<24} password set {changed}")
        case "mosquitto", "sync":
            return deployment.run_with_store(args, config, store)
        case "settlement", "close":
            return _close_settlement(store, args, now)
    return EXIT_OK


def _close_settlement(store: Store, args: argparse.Namespace, now: datetime) -> int:
    try:
        rows = store.settlement.close(args.community_id, args.period, now)
    except ValueError as err:  # a malformed period
        print(f"netbewust-server: {err}", file=sys.stderr)
        return EXIT_USAGE
    except SettlementError as err:
        print(f"netbewust-server: {err}", file=sys.stderr)
        return EXIT_FAILURE
    for row in rows:
        if args.json:
            print(json.dumps({"for_period": row.for_period, **row.document}))
            continue
        kind = "correction of" if row.is_correction else "statement for"
        print(
            f"{kind} {row.for_period}: {len(row.document['households'])} households,"
            f" credit {row.document['credit_cents'] / 100:.2f} EUR,"
            f" rules version {row.rules.version}"
        )
    return EXIT_OK


def _write_export(text: str, output: Path | None) -> None:
    if output is None:
        print(text)
        return
    write_private(output, text.encode())  # member data: the operator's eyes only
    print(f"exported to {output}", file=sys.stderr)


def _set_operator(store: Store, args: argparse.Namespace, now: datetime) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().removesuffix("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("the passwords differ", file=sys.stderr)
            return EXIT_USAGE
    if not MIN_OPERATOR_PASSWORD <= len(password) <= MAX_PASSWORD:
        print(
            f"a password has {MIN_OPERATOR_PASSWORD} to {MAX_PASSWORD} characters",
            file=sys.stderr,
        )
        return EXIT_USAGE
    hashed = OPERATOR_HASHER.hash(password)
    if args.action == "add":
        store.add_operator(args.username, hashed, now)
        print(f"added operator {args.username}")
    elif store.set_operator_password(args.username, hashed, now):
        print(f"new password for {args.username}; their sessions ended")
    else:
        print(f"no operator {args.username}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _list_households(store: Store, community: str | None, *, as_json: bool) -> None:
    households = store.households(community)
    rows = [
        {
            "household": h.household_id,
            "community": h.community_id,
            "transformer": h.transformer_id,
            "online": h.online,
            "last_seen_at": h.last_seen_at.isoformat() if h.last_seen_at else None,
            "connection": (
                f"{h.capabilities.phases}x{h.capabilities.fuse_current_a:g}A"
                if h.capabilities
                else None
            ),
        }
        for h in households
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        state = "online" if row["online"] else "offline"
        print(
            f"{row['household']:<20} {row['community']:<16} {state:<8} "
            f"{row['connection'] or '-':<8} last seen {row['last_seen_at'] or 'never'}"
        )
    print(f"{len(rows)} household(s)", file=sys.stderr)


def _serve(config: ServerConfig, store: Store) -> int:
    if not config.mqtt.password:
        print("netbewust-server: set mqtt.password (or NETBEWUST_MQTT_PASSWORD)", file=sys.stderr)
        return EXIT_USAGE
    deployment.warn_without_tls(config)
    try:
        deployment.sync_at_start(config, store)
        asyncio.run(_serve_until_signalled(config, store))
    except BrokerError as err:
        _LOGGER.error("%s", err)
        return EXIT_FAILURE
    except OSError as err:
        _LOGGER.error("cannot serve HTTP on %s:%d: %s", config.http.host, config.http.port, err)
        return EXIT_FAILURE
    return EXIT_OK


async def _serve_until_signalled(config: ServerConfig, store: Store) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with serving(config, store):  # stops in reverse order
        _LOGGER.info("serving; broker %s:%d", config.mqtt.host, config.mqtt.port)
        await stop.wait()
        _LOGGER.info("stopping")


def _demo(args: argparse.Namespace) -> int:
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_safe_logging()
    for chatty in ("amqtt", "transitions"):  # the embedded broker logs every packet
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        hours, minutes = (int(part) for part in args.profile_start.split(":"))
        options = DemoOptions(
            households=args.households,
            speed=args.speed,
            seed=args.seed,
            data_dir=args.data_dir,
            http_port=args.http_port,
            mqtt_port=args.mqtt_port,
            cap_w_per_household=args.cap_kw_per_household * 1000,
            profile_start=time(hours, minutes),
            collective=args.collective,
            settlement=args.settlement,
        )
    except ValueError as err:
        print(f"netbewust-server demo: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        asyncio.run(_demo_until_signalled(options))
    except (OSError, BrokerError, StoreError) as err:
        print(f"netbewust-server demo: {err}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


async def _demo_until_signalled(options: DemoOptions) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await run_demo(options, stop, lambda text: print(text, flush=True))
