"""Profile validation: every shipped file loads; bad files fail naming file and field."""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

import pytest

from custom_components.netbewust.modbus import Profile, ProfileError, ProfileKind, load_profile
from custom_components.netbewust.modbus.profile import PROFILE_DIR, parse_profile

if TYPE_CHECKING:
    from pathlib import Path

MODBUS_DIR = PROFILE_DIR.parent


def test_shipped_profiles_cover_the_issue(profiles: dict[str, Profile]) -> None:
    assert set(profiles) == {
        "alfen_ng9xx",
        "phoenix_em_cp_pp_eth",
        "victron_evcs",
        "generic_charger",
        "sunspec_battery",
        "sunspec_inverter",
        "sunspec_meter",
        "victron_gx_ess",
        "sg_ready_relay",
    }
    kinds = {profile.kind for profile in profiles.values()}
    assert kinds == set(ProfileKind)
    for profile in profiles.values():
        assert len(profile.when_offline) > 40, profile.profile_id
        assert len(profile.source) > 40, profile.profile_id


def test_driver_never_imports_home_assistant() -> None:
    glue = {"runtime.py", "entities.py"}  # the Home Assistant side of the package
    for source in MODBUS_DIR.rglob("*.py"):
        if source.name in glue:
            continue
        text = source.read_text()
        assert "import homeassistant" not in text, source
        assert "from homeassistant" not in text, source


def _alfen() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PROFILE_DIR / "alfen_ng9xx.json").read_text())
    return data


def _broken(change: str) -> dict[str, Any]:
    data = _alfen()
    match change:
        case "missing_kind":
            del data["kind"]
        case "bad_kind":
            data["kind"] = "toaster"
        case "bad_type":
            data["registers"]["power"]["type"] = "float16"
        case "address_and_model":
            data["registers"]["power"]["model"] = 203
        case "unknown_read":
            data["read"]["power_w"] = "nope"
        case "unknown_read_field":
            data["read"]["frobnication"] = "power"
        case "single_phase_list":
            data["read"]["phase_currents_a"] = "current_l1"
        case "readonly_control":
            data["registers"]["max_current"]["writable"] = False
        case "missing_role":
            del data["control"]["registers"]["current"]
        case "wrong_method":
            data["control"]["method"] = "sunspec_storage"
        case "bad_state":
            data["charger_states"]["C2"] = "X"
        case "bad_watchdog":
            data["watchdog"] = {"refresh_s": 90, "validity_s": 60}
        case "coil_not_bool":
            data["registers"]["power"]["table"] = "coil"
        case "bad_scale_register":
            data["registers"]["power"]["scale_register"] = "W_SF"
        case "zero_scale":
            data["registers"]["power"]["scale"] = 0
        case "bad_unit_id":
            data["registers"]["power"]["unit_id"] = 300
        case "bad_currents":
            data["control"]["min_current_a"] = 40
        case "typo":
            data["registers"]["power"]["wirtable"] = True
        case "text_scale":
            data["registers"]["power"]["scale"] = "10"
        case "no_states":
            del data["charger_states"]
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("missing_kind", "field 'kind' is missing"),
        ("bad_kind", "field 'kind' is 'toaster'; allowed: charger"),
        ("bad_type", "field 'registers.power.type' is 'float16'"),
        ("address_and_model", "register 'power' needs either 'address' or 'model'"),
        ("unknown_read", "field 'read.power_w' names unknown register 'nope'"),
        ("unknown_read_field", "field 'read.frobnication' is not a known reading"),
        ("single_phase_list", "field 'read.phase_currents_a' must be a list"),
        ("readonly_control", "register 'max_current' (role current) must be writable"),
        ("missing_role", "field 'control.registers.current' is missing"),
        ("wrong_method", "'sunspec_storage' does not fit a charger"),
        ("bad_state", "field 'charger_states.C2' is 'X'"),
        ("bad_watchdog", "needs 0 < refresh_s < validity_s"),
        ("coil_not_bool", "coils and discrete inputs have type 'bool'"),
        ("bad_scale_register", "unknown scale_register 'W_SF'"),
        ("zero_scale", "scale must not be 0"),
        ("bad_unit_id", "field 'registers.power.unit_id' must be less than or equal to 255"),
        ("typo", "field 'registers.power.wirtable' is not a known field"),
        ("text_scale", "field 'registers.power.scale' must be a valid number"),
        ("no_states", "field 'charger_states' is missing"),
        ("bad_currents", "min_current_a <= max_current_a"),
    ],
)
def test_bad_profiles_name_file_and_field(change: str, message: str) -> None:
    with pytest.raises(ProfileError) as info:
        parse_profile(_broken(change), "alfen_ng9xx.json")
    assert str(info.value).startswith("alfen_ng9xx.json: ")
    assert message in str(info.value)


def test_file_errors(tmp_path: Path) -> None:
    bad_json = tmp_path / "broken.json"
    bad_json.write_text('{"id": "broken",')
    with pytest.raises(ProfileError, match=r"broken.json: not valid JSON \(line 1"):
        load_profile(bad_json)
    with pytest.raises(ProfileError, match=r"missing\.json: cannot be read"):
        load_profile(tmp_path / "missing.json")
    renamed = tmp_path / "my_charger.json"
    renamed.write_text(json.dumps(_alfen()))
    with pytest.raises(ProfileError, match="'id' must equal the file name"):
        load_profile(renamed)
    not_object = tmp_path / "list.json"
    not_object.write_text("[1, 2]")
    with pytest.raises(ProfileError, match=r"list\.json: the file must be a JSON object"):
        load_profile(not_object)


def test_adding_a_brand_is_adding_a_file(tmp_path: Path) -> None:
    data = copy.deepcopy(_alfen())
    data["id"] = "my_alfen_clone"
    data["name"] = "My clone"
    (tmp_path / "my_alfen_clone.json").write_text(json.dumps(data))
    profile = load_profile(tmp_path / "my_alfen_clone.json")
    assert profile.name == "My clone"
    assert profile.register("current").address == 1210
