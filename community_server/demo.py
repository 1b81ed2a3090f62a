"""`netbewust-server demo`: a whole neighbourhood on loopback, in one process.

The real server, the embedded broker (with the generated credentials and ACL), the
live allocation keeping the transformer below its cap, the collective day-ahead plan,
the dashboard (operator `demo`, whose password it announces), and N simulated
households running the guard engine. A fresh SQLite database in a temporary (or given)
directory each time.

The collective plan runs offline on `DemoPrices` (a winter day-ahead shape on the
demo's clock, labelled as demo prices in the log and on the dashboard), with the demo
transformer's cap; the households with a car offer it as an envelope while it is
plugged in. `collective=False` (`--no-collective`) leaves the plan off.

After startup it fast-forwards fresh copies of the homes through the last days and
announces their settlement (`demo_settlement.py`); `settlement=False` (`--no-settlement`)
skips that.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from .cap_control import CapControl, fixed_cap
from .collective_runtime import CollectiveRuntime
from .config import (
    CollectiveConfig,
    DatabaseConfig,
    HttpConfig,
    MosquittoConfig,
    MqttConfig,
    ServerConfig,
)
from .credentials import new_password
from .dashboard import DASHBOARD_PATH, Dashboard
from .demo_prices import LABEL as DEMO_PRICES_LABEL
from .demo_prices import DemoPrices
from .demo_settlement import SettledDay, credit_table, fast_forward
from .embedded_broker import EmbeddedBroker
from .http_api import HttpApi, start_site
from .mosquitto import DYNSEC_FILE, ServerAccount, write_dynsec_file
from .passwords import OPERATOR_HASHER
from .server import CommunityServer
from .settlement_store import SETTLEMENT_ZONE
from .simulation.home import SimulatedHome
from .simulation.member import MemberAccount, SimulatedMember
from .simulation.profiles import LOCAL_OFFSET, HouseholdProfile
from .store import Store

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from .collective_runtime import PlanStatus
    from .store import HouseholdCredentials

_LOGGER = logging.getLogger(__name__)
COMMUNITY = "demo"
TRANSFORMER = "trafo-1"
SERVER_USER = "netbewust_server"
DEMO_OPERATOR = "demo"
DATABASE_NAME = "demo.db"
MAX_HOUSEHOLDS = 1000  # each member has its own MQTT client thread
# The collective plan in the demo: a Dutch all-in tariff on the spot price, and a round
# every few seconds so the first plan follows the members' first baselines quickly.
DEMO_COLLECTIVE = CollectiveConfig(
    enabled=True,
    energy_tax_eur_per_kwh=0.10,
    supplier_markup_eur_per_kwh=0.02,
    vat_pct=21.0,
    check_s=5.0,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoOptions:
    households: int = 50
    speed: float = 1.0  # profile seconds per real second
    seed: int = 0
    data_dir: Path | None = None
    http_port: int = 8480
    mqtt_port: int = 0  # 0: any free port
    cap_w_per_household: float = 1600.0  # the day plan binds at night, yet fits
    profile_start: time = time(17, 30)  # local time of day the profiles start at
    collective: bool = True  # the day-ahead plan, on demo prices
    settlement: bool = True  # a simulated yesterday, settled and printed (demo_settlement.py)

    def __post_init__(self) -> None:
        if not 1 <= self.households <= MAX_HOUSEHOLDS:
            raise ValueError(f"households must be 1-{MAX_HOUSEHOLDS}")
        if not 0 < self.speed <= 3600:
            raise ValueError("speed must be above 0 and at most 3600")
        if self.cap_w_per_household <= 0:
            raise ValueError("the cap per household must be positive")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _profile_start(start: time, now: datetime) -> datetime:
    local_today = (now + LOCAL_OFFSET).date()
    return datetime.combine(local_today, start, tzinfo=UTC) - LOCAL_OFFSET


def _demo_clock(
    profile_start: datetime, started_at: datetime, speed: float
) -> Callable[[datetime], datetime]:
    """The profile clock (the households' time of day) at a real moment."""

    def demo_moment(real: datetime) -> datetime:
        return profile_start + (real - started_at) * speed

    return demo_moment


class DemoPlanStatuses:
    """The collective runtime's statuses for the dashboard, each saying it is on demo prices."""

    def __init__(self, runtime: CollectiveRuntime) -> None:
        self._runtime = runtime

    @property
    def status(self) -> Mapping[str, PlanStatus]:
        return {
            transformer_id: dataclasses.replace(
                plan,
                detail=f"{DEMO_PRICES_LABEL}: {plan.detail}" if plan.detail else DEMO_PRICES_LABEL,
            )
            for transformer_id, plan in self._runtime.status.items()
        }


def _fresh_store(data_dir: Path) -> Store:
    for leftover in data_dir.glob(f"{DATABASE_NAME}*"):
        leftover.unlink()
    return Store.open(data_dir / DATABASE_NAME)


async def run_demo(
    options: DemoOptions, stop: asyncio.Event, announce: Callable[[str], None]
) -> None:
    """Run until `stop` is set; everything started is stopped again, in reverse order."""
    data_dir = options.data_dir or Path(tempfile.mkdtemp(prefix="netbewust-demo-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    store = _fresh_store(data_dir)
    cap_w = options.cap_w_per_household * options.households
    store.create_community(COMMUNITY, "Demowijk", now)
    store.create_transformer(TRANSFORMER, COMMUNITY, "Transformator 1", cap_w)
    joined = []
    for number in range(1, options.households + 1):
        code = store.issue_join_code(COMMUNITY, now, timedelta(minutes=5), TRANSFORMER).code
        joined.append(store.redeem_join_code(code, now, f"huis-{number:03d}"))
    # The dashboard is for operators: the demo makes one, with a password it announces.
    operator_password = new_password()
    store.add_operator(DEMO_OPERATOR, OPERATOR_HASHER.hash(operator_password), now)
    account = ServerAccount(SERVER_USER, new_password())
    auth_dir = data_dir / "broker"
    auth_dir.mkdir(mode=0o700, exist_ok=True)
    write_dynsec_file(auth_dir / DYNSEC_FILE, store.broker_accounts(), account)
    mqtt_port = options.mqtt_port or free_port()
    config = ServerConfig(
        database=DatabaseConfig(path=data_dir / DATABASE_NAME),
        mqtt=MqttConfig(
            port=mqtt_port, username=SERVER_USER, password=account.password, protocol="3.1.1"
        ),
        mosquitto=MosquittoConfig(auth_dir=str(auth_dir)),  # joins over HTTP work too
        http=HttpConfig(port=options.http_port),
    )
    profile_start = _profile_start(options.profile_start, now)
    async with contextlib.AsyncExitStack() as running:  # stops in reverse order
        running.callback(store.close)
        broker = EmbeddedBroker(auth_dir, port=mqtt_port)
        await broker.start()
        running.push_async_callback(broker.stop)
        server = CommunityServer(config, store)
        await server.start()
        running.push_async_callback(server.stop)
        control = CapControl(server, store, TRANSFORMER, fixed_cap(cap_w))
        tasks: list[asyncio.Task[None]] = [asyncio.create_task(control.run())]
        running.push_async_callback(_cancel, tasks)
        collective = None
        if options.collective:
            prices = DemoPrices(options.seed, _demo_clock(profile_start, now, options.speed))
            collective = CollectiveRuntime(
                server,
                store,
                [control],
                caps=fixed_cap(cap_w),
                prices=prices,
                config=DEMO_COLLECTIVE,
                rule=control.rule,
            )
            tasks.append(asyncio.create_task(collective.run(), name="collective"))
            _LOGGER.warning("the collective plan runs on %s", DEMO_PRICES_LABEL)
        statuses = None if collective is None else DemoPlanStatuses(collective)
        dashboard = Dashboard(server, store, [control], collective=statuses)
        http = await start_site(HttpApi(server, store, config), config, dashboard)
        running.push_async_callback(http.cleanup)
        members: list[asyncio.Task[None]] = []
        for index, credentials in enumerate(joined):
            member_account = MemberAccount(
                COMMUNITY,
                credentials.household_id,
                credentials.username,
                credentials.password,
                "127.0.0.1",
                mqtt_port,
                protocol="3.1.1",
            )
            seed = options.seed * 100_003 + index
            home = SimulatedHome(HouseholdProfile.draw(seed), seed=seed)
            member = SimulatedMember(
                member_account, home, speed=options.speed, profile_start=profile_start
            )
            members.append(asyncio.create_task(member.run(), name=credentials.household_id))
        running.push_async_callback(_cancel, members)
        plan = f"collective day plan on {DEMO_PRICES_LABEL}" if collective else "no collective plan"
        announce(
            f"Netbewust demo: {options.households} households, transformer cap "
            f"{cap_w / 1000:g} kW, {plan}, data in {data_dir}\n"
            f"Dashboard: http://127.0.0.1:{options.http_port}{DASHBOARD_PATH} (log in as"
            f" {DEMO_OPERATOR}, password {operator_password})\n"
            f"MQTT (embedded, 3.1.1): 127.0.0.1:{mqtt_port}. Stop with Ctrl+C."
        )
        if options.settlement:
            tasks.append(
                asyncio.create_task(
                    _settle_a_day(store, options, joined, now=now, stop=stop, announce=announce),
                    name="settlement",
                )
            )
        await stop.wait()
        _LOGGER.info("stopping the demo")


async def _settle_a_day(
    store: Store,
    options: DemoOptions,
    joined: Sequence[HouseholdCredentials],
    *,
    now: datetime,
    stop: asyncio.Event,
    announce: Callable[[str], None],
) -> None:
    """Fast-forward the demo's homes (fresh ones, of the same seeds) through the last days
    and announce the settlement; off the event loop, as it takes seconds of CPU."""
    homes = []
    for index, credentials in enumerate(joined):
        seed = options.seed * 100_003 + index  # as the live member's
        homes.append((credentials.household_id, SimulatedHome(HouseholdProfile.draw(seed), seed)))
    settled: SettledDay | None = await asyncio.to_thread(
        fast_forward,
        store,
        COMMUNITY,
        homes,
        share_w=options.cap_w_per_household,
        today=now.astimezone(SETTLEMENT_ZONE).date(),
        stopping=stop.is_set,
    )
    if settled is None:
        return
    base = f"http://127.0.0.1:{options.http_port}"
    announce(
        f"{credit_table(settled)}\n"
        f"The dashboard shows the open period's settlement: {base}{DASHBOARD_PATH}; this one"
        f" in full: {base}/api/v1/communities/{COMMUNITY}/settlement/{settled.settlement.period}"
    )


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
