"""The `[allocation]` settings: the sharing rule and the cost of flexibility, end to CapControl."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from community_server.allocation_settings import AllocationSettings
from community_server.cap_control import CapControl, fixed_cap
from community_server.config import ConfigError, load_config
from netbewust_core.collective.problem import SharingRule
from netbewust_core.protocol.messages import Capabilities, Message

from .conftest import NOW
from .test_cap_control import FakeServer

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    from community_server.dso.in_force import CapInForce
    from community_server.store import Store


def _config(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> AllocationSettings:
    path = tmp_path / "server.toml"
    path.write_text(text)
    return load_config(path, environ or {}).allocation


def test_equal_share_is_the_default(tmp_path: Path) -> None:
    settings = _config(tmp_path, "")
    assert settings.rule is SharingRule.EQUAL_SHARE
    assert settings.cost_for("dynamic") == 0.0


def test_rule_and_costs_from_the_file(tmp_path: Path) -> None:
    settings = _config(
        tmp_path,
        '[allocation]\nrule = "merit_order"\ndefault_cost_eur_per_kwh = 0.2\n'
        "[allocation.tariff_cost_eur_per_kwh]\ndynamic = 0.05\nfixed = 0.3\n",
    )
    assert settings.rule is SharingRule.MERIT_ORDER
    assert settings.cost_for("dynamic") == 0.05
    assert settings.cost_for("fixed") == 0.3
    assert settings.cost_for("unlisted") == 0.2
    assert settings.cost_for(None) == 0.2


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    settings = _config(
        tmp_path,
        '[allocation]\nrule = "merit_order"\n',
        {
            "NETBEWUST_ALLOCATION_RULE": "Pro_Rata_Flexible",
            "NETBEWUST_ALLOCATION_DEFAULT_COST_EUR_PER_KWH": "0.1",
            "NETBEWUST_ALLOCATION_TARIFF_COST_EUR_PER_KWH": "dynamic=0.02, fixed=0.4",
        },
    )
    assert settings.rule is SharingRule.PRO_RATA_FLEXIBLE
    assert (settings.cost_for("dynamic"), settings.cost_for("x")) == (0.02, 0.1)


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        ('[allocation]\nrule = "cheapest"\n', {}, "allocation.rule: must be one of"),
        ("[allocation]\nrule = 3\n", {}, "allocation.rule: must be one of"),
        ("[allocation]\ndefault_cost_eur_per_kwh = -1\n", {}, "default_cost_eur_per_kwh"),
        ('[allocation]\ndefault_cost_eur_per_kwh = "nan"\n', {}, "default_cost_eur_per_kwh"),
        (
            "[allocation]\ndefault_cost_eur_per_kwh = 250\n",
            {},
            "default_cost_eur_per_kwh: must be less than or equal to 100, got 250",
        ),
        ("[allocation]\ndefault_cost_eur_per_kwh = true\n", {}, "must be a valid number, got True"),
        ("[allocation]\nsharing = 'equal_share'\n", {}, "allocation.sharing: unknown setting"),
        ("allocation = 3\n", {}, "[allocation] must be a table"),
        ('[allocation]\ntariff_cost_eur_per_kwh = "x"\n', {}, "cost_eur_per_kwh: must be a table"),
        (
            "[allocation.tariff_cost_eur_per_kwh]\nfixed = 'dear'\n",
            {},
            "fixed: must be a valid number, got 'dear'",
        ),
        ("", {"NETBEWUST_ALLOCATION_RULE": "random"}, "allocation.rule"),
        ("", {"NETBEWUST_ALLOCATION_TARIFF_COST_EUR_PER_KWH": "=0.1"}, "class=cost"),
        ("", {"NETBEWUST_ALLOCATION_SPEED": "1"}, "allocation.speed: unknown setting"),
    ],
)
def test_bad_settings_are_refused_clearly(
    tmp_path: Path, text: str, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        _config(tmp_path, text, environ)


def _member(store: Store, name: str, tariff_class: str | None) -> str:
    if store.transformer("trafo-1") is None:
        store.create_transformer("trafo-1", "wijk-1", "Trafo 1", 9_000.0)
    code = store.issue_join_code("wijk-1", NOW, timedelta(days=1), "trafo-1").code
    household = store.redeem_join_code(code, NOW, name).household_id
    caps = Capabilities(phases=3, fuse_current_a=25.0, tariff_class=tariff_class)
    store.save_received(
        [Message(community="wijk-1", household=household, sent_at=NOW, body=caps)], NOW
    )
    return household


async def test_merit_order_curtails_the_cheapest_tariff_class_first(server_store: Store) -> None:
    cheap = _member(server_store, "huis-dynamisch", "dynamic")
    dear = _member(server_store, "huis-vast", "fixed")
    settings = AllocationSettings(
        rule=SharingRule.MERIT_ORDER,
        default_cost_eur_per_kwh=0.2,
        tariff_cost_eur_per_kwh={"dynamic": 0.05, "fixed": 0.3},
    )
    server = FakeServer()
    control = CapControl(server, server_store, "trafo-1", fixed_cap(9_000.0), settings=settings)  # type: ignore[arg-type]
    for name in (cheap, dear):
        server.report(name, 6000.0, NOW)
    allocation = await control.step(NOW)
    shares = {share.household_id: share for share in allocation.shares}
    assert shares[cheap].curtailment_w > 2000.0  # the cheap flexibility gives up nearly all
    assert shares[dear].curtailment_w < 1.0
    assert control.status is not None
    assert control.status.rule == "merit_order"


async def test_equal_share_spreads_the_curtailment(server_store: Store) -> None:
    names = [_member(server_store, f"huis-{n}", t) for n, t in enumerate(("dynamic", "fixed"))]
    server = FakeServer()
    control = CapControl(server, server_store, "trafo-1", fixed_cap(9_000.0))  # type: ignore[arg-type]
    for name in names:
        server.report(name, 6000.0, NOW)
    allocation = await control.step(NOW)
    cuts = [share.curtailment_w for share in allocation.shares]
    assert min(cuts) > 1000.0
    assert max(cuts) - min(cuts) < 1.0
    assert control.status is not None
    assert control.status.rule == "equal_share"


async def test_export_caps_reach_the_exporting_households(server_store: Store) -> None:
    names = [_member(server_store, f"dak-{n}", None) for n in range(3)]
    server = FakeServer()

    async def export_capped(transformer_id: str, now: datetime) -> CapInForce:
        cap = await fixed_cap(100_000.0)(transformer_id, now)
        return replace(cap, export_w=6_000.0)

    control = CapControl(server, server_store, "trafo-1", export_capped)  # type: ignore[arg-type]
    for name in names:
        server.report(name, -4000.0, NOW)
    await control.step(NOW)
    sent = dict(server.sent)
    assert set(sent) == set(names)
    in_force = [limit.interval_at(NOW) for limit in sent.values()]
    assert all(i is not None and i.max_import_w is None for i in in_force)
    assert sum(i.max_export_w or 0.0 for i in in_force if i is not None) <= 6_000.0
    assert control.status is not None
    assert (control.status.export_cap_w, control.status.export_limited) == (6_000.0, True)
