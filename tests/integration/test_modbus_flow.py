"""The Modbus device subentry flow against real simulated devices on loopback."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from unittest.mock import patch

import pytest
from homeassistant.const import CONF_NAME
from homeassistant.data_entry_flow import FlowResultType
from pymodbus.constants import ExcCodes

from custom_components.netbewust.const import (
    CONF_DEVICE_PHASES,
    CONF_MAX_CHARGE_POWER,
    CONF_MAX_CURRENT,
    CONF_MIN_CURRENT,
    CONF_MODBUS_BAUDRATE,
    CONF_MODBUS_HOST,
    CONF_MODBUS_IDENTITY,
    CONF_MODBUS_LINK,
    CONF_MODBUS_PARITY,
    CONF_MODBUS_PORT,
    CONF_MODBUS_PROFILE,
    CONF_MODBUS_SERIAL_PORT,
    CONF_MODBUS_STOPBITS,
    CONF_MODBUS_UNIT_ID,
    CONF_PRIORITY,
    CONF_SAFE_CURRENT,
    SUBENTRY_MODBUS,
)
from custom_components.netbewust.flows.modbus import ModbusSubentryFlow, transport_settings
from custom_components.netbewust.modbus import Link
from tests.modbus.conftest import serving
from tests.modbus.serial_pair import SerialPair, virtual_serial_pair
from tests.modbus.sim_chargers import AlfenSim
from tests.modbus.simulator import RegisterBank, free_port

from .test_subentry_flows import STRINGS, by_title, make_entry, start, submit

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from homeassistant.core import HomeAssistant

    from tests.modbus.simulator import SimServer


@pytest.fixture(autouse=True)
def _loopback(socket_enabled: None) -> Iterator[None]:
    """Real simulators on 127.0.0.1; the runtime is not under test here."""
    with (
        patch("custom_components.netbewust.async_setup_entry", return_value=True),
        patch("custom_components.netbewust.async_unload_entry", return_value=True),
        patch.object(ModbusSubentryFlow, "probe_timeout_s", 0.4),
    ):
        yield


@pytest.fixture
async def alfen() -> AsyncIterator[tuple[SimServer, RegisterBank]]:
    bank = RegisterBank()
    sim = AlfenSim(bank)
    async with serving(bank, sim.step) as server:
        yield server, bank


@pytest.fixture
async def alfen_on_serial(tmp_path: Path) -> AsyncIterator[SerialPair]:
    """An Alfen on a virtual RS-485 line; absent unit ids stay silent as on a real bus."""
    bank = RegisterBank()
    sim = AlfenSim(bank)
    async with (
        virtual_serial_pair(tmp_path) as line,
        serving(bank, sim.step, silent_units=True, serial_port=line.device_end),
    ):
        yield line


def alfen_input(port: int, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        CONF_NAME: "Laadpaal",
        CONF_MODBUS_PROFILE: "alfen_ng9xx",
        CONF_MODBUS_LINK: "tcp",
        CONF_MODBUS_HOST: "127.0.0.1",
        CONF_MODBUS_PORT: port,
        CONF_MODBUS_UNIT_ID: 1,
        CONF_PRIORITY: 1,
        CONF_DEVICE_PHASES: ["1", "2", "3"],
        CONF_MIN_CURRENT: 6,
        CONF_MAX_CURRENT: 16,
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def assert_base_error(result: Any, error: str) -> None:
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error}
    assert error in STRINGS["config_subentries"][SUBENTRY_MODBUS]["error"]
    assert result["description_placeholders"]["detail"]  # the Modbus layer's own words


async def add(hass: HomeAssistant, entry: Any, user_input: dict[str, Any]) -> Any:
    return await submit(hass, await start(hass, entry, SUBENTRY_MODBUS), user_input)


async def test_probed_charger_is_created_with_identity(
    hass: HomeAssistant, alfen: tuple[SimServer, RegisterBank]
) -> None:
    server, _ = alfen
    entry = make_entry(hass, phases=3)
    form = await start(hass, entry, SUBENTRY_MODBUS)
    assert form["type"] is FlowResultType.FORM
    assert form["errors"] == {}

    result = await submit(hass, form, alfen_input(server.port, **{CONF_MODBUS_BAUDRATE: "19200"}))

    assert result["type"] is FlowResultType.CREATE_ENTRY
    data = entry.subentries[by_title(entry, "Laadpaal")].data
    assert CONF_MODBUS_BAUDRATE not in data  # serial settings do not stick to a TCP device
    assert data[CONF_MODBUS_PORT] == server.port
    assert data[CONF_MODBUS_UNIT_ID] == 1
    assert data[CONF_MODBUS_IDENTITY]["model"] == "NG910"
    assert data[CONF_MODBUS_IDENTITY]["firmware"] == "6.4.0-4210"
    assert CONF_MAX_CHARGE_POWER not in data  # battery limits do not belong to a charger


async def test_refused_connection(hass: HomeAssistant) -> None:
    entry = make_entry(hass, phases=3)
    assert_base_error(await add(hass, entry, alfen_input(free_port())), "cannot_connect")
    assert not entry.subentries


async def test_wrong_unit_id(hass: HomeAssistant, alfen: tuple[SimServer, RegisterBank]) -> None:
    entry = make_entry(hass, phases=3)
    result = await add(hass, entry, alfen_input(alfen[0].port, **{CONF_MODBUS_UNIT_ID: 7}))
    assert_base_error(result, "wrong_unit_id")


async def test_timeout(hass: HomeAssistant, alfen: tuple[SimServer, RegisterBank]) -> None:
    server, bank = alfen
    bank.delay_s = 1.0
    entry = make_entry(hass, phases=3)
    assert_base_error(await add(hass, entry, alfen_input(server.port)), "timeout")


async def test_profile_mismatch(hass: HomeAssistant, alfen: tuple[SimServer, RegisterBank]) -> None:
    entry = make_entry(hass, phases=3)
    result = await add(
        hass,
        entry,
        alfen_input(alfen[0].port, **{CONF_MODBUS_PROFILE: "phoenix_em_cp_pp_eth"}),
    )
    assert_base_error(result, "profile_mismatch")


async def test_modbus_exception(hass: HomeAssistant, alfen: tuple[SimServer, RegisterBank]) -> None:
    server, bank = alfen
    bank.forced_exception = ExcCodes.DEVICE_BUSY
    entry = make_entry(hass, phases=3)
    assert_base_error(await add(hass, entry, alfen_input(server.port)), "modbus_exception")


async def test_incomplete_address_and_limits_are_field_errors(hass: HomeAssistant) -> None:
    entry = make_entry(hass, phases=3)
    result = await add(
        hass,
        entry,
        alfen_input(
            free_port(),
            **{CONF_MODBUS_HOST: " ", CONF_MAX_CURRENT: 4, CONF_DEVICE_PHASES: ["1", "2"]},
        ),
    )
    assert result["errors"] == {
        CONF_MODBUS_HOST: "host_required",
        CONF_MAX_CURRENT: "current_out_of_range",
        CONF_DEVICE_PHASES: "charger_one_or_three_phases",
    }
    serial = await add(
        hass, entry, alfen_input(free_port(), **{CONF_MODBUS_LINK: "serial", CONF_NAME: ""})
    )
    assert serial["errors"] == {
        CONF_MODBUS_SERIAL_PORT: "serial_port_required",
        CONF_NAME: "name_required",
    }
    battery = await add(
        hass, entry, alfen_input(free_port(), **{CONF_MODBUS_PROFILE: "sunspec_battery"})
    )
    assert battery["errors"] == {
        "max_charge_power": "value_required",
        "max_discharge_power": "value_required",
    }
    for errors in (result["errors"], serial["errors"], battery["errors"]):
        for error in errors.values():
            assert error in STRINGS["config_subentries"][SUBENTRY_MODBUS]["error"]


@pytest.mark.parametrize("safe_current", [0, 6, 10, 16])
async def test_charger_safe_current_is_0_or_between_its_minimum_and_maximum(
    hass: HomeAssistant, alfen: tuple[SimServer, RegisterBank], safe_current: float
) -> None:
    entry = make_entry(hass, phases=3)
    form = await start(hass, entry, SUBENTRY_MODBUS)
    assert CONF_SAFE_CURRENT in form["data_schema"].schema
    step = STRINGS["config_subentries"][SUBENTRY_MODBUS]["step"]
    for step_id in ("user", "reconfigure"):
        assert CONF_SAFE_CURRENT in step[step_id]["data"]
        assert CONF_SAFE_CURRENT in step[step_id]["data_description"]
    data = alfen_input(alfen[0].port, **{CONF_SAFE_CURRENT: safe_current})

    result = await submit(hass, form, data)

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.subentries[by_title(entry, "Laadpaal")].data[CONF_SAFE_CURRENT] == safe_current


async def test_charger_safe_current_outside_its_range_is_a_field_error(
    hass: HomeAssistant, alfen: tuple[SimServer, RegisterBank]
) -> None:
    entry = make_entry(hass, phases=3)
    port = alfen[0].port
    for safe_current in (3, 17, 5.9):  # below the 6 A minimum, above the 16 A maximum
        result = await add(hass, entry, alfen_input(port, **{CONF_SAFE_CURRENT: safe_current}))
        assert result["errors"] == {CONF_SAFE_CURRENT: "safe_current_out_of_range"}
    # A broken range is reported as such; the safe current is not judged against it.
    broken = await add(
        hass, entry, alfen_input(port, **{CONF_MAX_CURRENT: 4, CONF_SAFE_CURRENT: 3})
    )
    assert broken["errors"] == {CONF_MAX_CURRENT: "current_out_of_range"}
    assert "safe_current_out_of_range" in STRINGS["config_subentries"][SUBENTRY_MODBUS]["error"]
    assert not entry.subentries
    # Empty: nothing stored, the engine keeps the charger at its minimum when unsure.
    created = await add(hass, entry, alfen_input(port, **{CONF_SAFE_CURRENT: None}))
    assert created["type"] is FlowResultType.CREATE_ENTRY
    assert CONF_SAFE_CURRENT not in entry.subentries[by_title(entry, "Laadpaal")].data


async def test_a_safe_current_does_not_stick_to_other_device_kinds(hass: HomeAssistant) -> None:
    entry = make_entry(hass, phases=3)
    battery = await add(
        hass,
        entry,
        alfen_input(free_port(), **{CONF_MODBUS_PROFILE: "sunspec_battery", CONF_SAFE_CURRENT: 3}),
    )
    # Dropped with the other charger fields: only the battery's own limits are missing.
    assert battery["errors"] == {
        "max_charge_power": "value_required",
        "max_discharge_power": "value_required",
    }


async def test_serial_charger_is_probed_and_created(
    hass: HomeAssistant, alfen_on_serial: SerialPair
) -> None:
    entry = make_entry(hass, phases=3)
    serial = {
        CONF_MODBUS_LINK: "serial",
        CONF_MODBUS_SERIAL_PORT: alfen_on_serial.host_end,
        CONF_MODBUS_BAUDRATE: "19200",
        CONF_MODBUS_PARITY: "N",  # a pty refuses parity; real adapters take E and O
        CONF_MODBUS_STOPBITS: "2",
        CONF_MODBUS_HOST: None,
        CONF_MODBUS_PORT: None,
    }
    result = await add(hass, entry, alfen_input(502, **serial))

    assert result["type"] is FlowResultType.CREATE_ENTRY
    data = entry.subentries[by_title(entry, "Laadpaal")].data
    assert data[CONF_MODBUS_IDENTITY]["model"] == "NG910"
    assert data[CONF_MODBUS_SERIAL_PORT] == alfen_on_serial.host_end
    settings = transport_settings(data, 1.0)  # what the runtime will open
    assert (settings.link, settings.serial_port) == (Link.SERIAL, alfen_on_serial.host_end)
    assert (settings.baudrate, settings.parity, settings.stopbits) == (19200, "N", 2)


async def test_serial_wrong_unit_id_is_a_timeout(
    hass: HomeAssistant, alfen_on_serial: SerialPair
) -> None:
    """On RS-485 nobody answers for an absent unit id: a timeout, not a gateway error."""
    entry = make_entry(hass, phases=3)
    serial = {
        CONF_MODBUS_LINK: "serial",
        CONF_MODBUS_SERIAL_PORT: alfen_on_serial.host_end,
        CONF_MODBUS_UNIT_ID: 7,
    }
    result = await add(hass, entry, alfen_input(502, **serial))
    assert_base_error(result, "timeout")
    assert "check the unit id (7)" in result["description_placeholders"]["detail"]
    assert not entry.subentries


async def test_serial_port_that_does_not_exist_is_a_clear_error(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    entry = make_entry(hass, phases=3)
    missing = str(tmp_path / "ttyUSB9")
    serial = {CONF_MODBUS_LINK: "serial", CONF_MODBUS_SERIAL_PORT: missing}
    result = await add(hass, entry, alfen_input(502, **serial))
    assert_base_error(result, "cannot_connect")
    assert "the serial port does not exist" in result["description_placeholders"]["detail"]
    assert not entry.subentries


def test_old_serial_subentries_default_to_9600_8n1() -> None:
    settings = transport_settings(
        {CONF_MODBUS_LINK: "serial", CONF_MODBUS_SERIAL_PORT: "/dev/ttyUSB0"}, 1.0
    )
    assert (settings.baudrate, settings.parity, settings.stopbits) == (9600, "N", 1)


async def test_reconfigure_moves_the_device_after_probing_the_new_address(
    hass: HomeAssistant, alfen: tuple[SimServer, RegisterBank]
) -> None:
    server, _ = alfen
    entry = make_entry(hass, phases=3)
    await add(hass, entry, alfen_input(server.port))
    subentry_id = by_title(entry, "Laadpaal")

    bank = RegisterBank()
    sim = AlfenSim(bank)
    async with serving(bank, sim.step) as moved:
        form = await entry.start_subentry_reconfigure_flow(hass, subentry_id)
        assert form["type"] is FlowResultType.FORM
        refused = await submit(hass, form, alfen_input(free_port()))
        assert_base_error(refused, "cannot_connect")
        assert entry.subentries[subentry_id].data[CONF_MODBUS_PORT] == server.port

        done = await submit(hass, refused, alfen_input(moved.port))
    assert done["type"] is FlowResultType.ABORT
    assert done["reason"] == "reconfigure_successful"
    assert entry.subentries[subentry_id].data[CONF_MODBUS_PORT] == moved.port


async def test_reconfigure_of_a_loaded_entry_leaves_the_reload_to_its_listener(
    hass: HomeAssistant, alfen: tuple[SimServer, RegisterBank]
) -> None:
    server, _ = alfen
    entry = make_entry(hass, phases=3)
    await add(hass, entry, alfen_input(server.port))
    subentry_id = by_title(entry, "Laadpaal")
    reloads: list[str] = []

    async def listener(hass: HomeAssistant, changed: Any) -> None:
        reloads.append(changed.entry_id)

    entry.add_update_listener(listener)
    form = await entry.start_subentry_reconfigure_flow(hass, subentry_id)
    done = await submit(hass, form, alfen_input(server.port, **{CONF_NAME: "Oprit"}))
    assert done["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.subentries[subentry_id].title == "Oprit"
    assert reloads == [entry.entry_id]  # once, by the listener: no second reload


async def test_a_missing_port_no_phases_and_no_power_are_field_errors(hass: HomeAssistant) -> None:
    entry = make_entry(hass, phases=3)
    result = await add(
        hass, entry, alfen_input(free_port(), **{CONF_MODBUS_PORT: None, CONF_DEVICE_PHASES: []})
    )
    assert result["errors"] == {
        CONF_MODBUS_PORT: "port_out_of_range",
        CONF_DEVICE_PHASES: "phases_required",
    }
    battery = await add(
        hass,
        entry,
        alfen_input(
            free_port(),
            **{
                CONF_MODBUS_PROFILE: "sunspec_battery",
                "max_charge_power": 0,
                "max_discharge_power": 2500,
            },
        ),
    )
    assert battery["errors"] == {"max_charge_power": "power_not_positive"}
    charger = await add(hass, entry, alfen_input(free_port(), **{CONF_MAX_CURRENT: None}))
    assert charger["errors"] == {CONF_MAX_CURRENT: "value_required"}
    for errors in (result["errors"], battery["errors"], charger["errors"]):
        for error in errors.values():
            assert error in STRINGS["config_subentries"][SUBENTRY_MODBUS]["error"]
