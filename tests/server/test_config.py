"""Server configuration: defaults, TOML, environment overrides and bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from community_server.config import ConfigError, ServerConfig, load_config


def test_defaults_are_safe() -> None:
    config = load_config(None, {})
    assert config == ServerConfig()
    assert config.mqtt.host == "127.0.0.1"
    assert not config.mqtt.tls
    assert "password" not in repr(config.mqtt)


def test_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text(
        'log_level = "DEBUG"\n'
        "[database]\n"
        'path = "/var/lib/netbewust/server.db"\n'
        "telemetry_retention_days = 7\n"
        "[mqtt]\n"
        "port = 8883\n"
        "tls = true\n"
    )
    config = load_config(
        path,
        {
            "NETBEWUST_MQTT_PORT": "1884",
            "NETBEWUST_MQTT_PASSWORD": "from-env",
            "NETBEWUST_MQTT_TLS": "false",
            "NETBEWUST_DATABASE_TELEMETRY_RETENTION_DAYS": "2.5",
            "NETBEWUST_CONFIG": str(path),
            "HOME": "/root",
        },
    )
    assert config.log_level == "DEBUG"
    assert config.database.path == Path("/var/lib/netbewust/server.db")
    assert config.database.telemetry_retention_days == 2.5
    assert config.mqtt.port == 1884
    assert config.mqtt.password == "from-env"
    assert config.mqtt.tls is False


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        ("[mqtt]\nprot = 1\n", {}, "mqtt.prot: unknown setting"),
        ("[mqtt]\nport = 'x'\n", {}, "mqtt.port"),
        ("[mqtt]\nport = true\n", {}, "mqtt.port"),
        ('[mqtt]\nport = "1883"\n', {}, "mqtt.port: must be a valid integer, got '1883'"),
        ("[mqtt]\nport = 70000\n", {}, "not a port"),
        ("mqtt = 1\n", {}, "must be a table"),
        ("colour = 'red'\n", {}, "unknown setting colour"),
        ("[database\n", {}, "not valid TOML"),
        ("", {"NETBEWUST_MQTT_TLS": "maybe"}, "mqtt.tls"),
        ("", {"NETBEWUST_DATABASE_TELEMETRY_RETENTION_DAYS": "-1"}, "positive"),
        ("", {"NETBEWUST_WHATEVER": "1"}, "not a setting"),
        ("[database]\npath = ''\n", {}, "database.path must name a file"),
        ("", {"NETBEWUST_LOG_LEVEL": "LOUD"}, "not a level"),
        ("[http]\ntls_cert_file = 'cert.pem'\n", {}, "go together"),
        ("", {"NETBEWUST_HTTP_PORT": "0"}, "http.port 0 is not a port"),
        ("", {"NETBEWUST_HTTP_PUBLIC_MQTT_PORT": "70000"}, "public_mqtt_port"),
        ("[collective]\nplanning_margin_pct = 50\n", {}, "planning_margin_pct"),
        ("[collective]\nplanning_margin_pct = -1\n", {}, "planning_margin_pct"),
        ("", {"NETBEWUST_COLLECTIVE_LIMIT_HEADROOM_PCT": "301"}, "limit_headroom_pct"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_reason(
    tmp_path: Path, text: str, environ: dict[str, str], message: str
) -> None:
    path = tmp_path / "server.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path, environ)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml", {})


def test_the_dso_section_with_accounts_estimates_and_a_ven(tmp_path: Path) -> None:
    digest = "a" * 64
    path = tmp_path / "server.toml"
    path.write_text(
        "[dso]\ndefault_import_w = 200000\n"
        f'[dso.accounts]\nstedin = "{digest}"\n'
        "[dso.non_member_estimate_w]\ntrafo-1 = 40000\n"
        '[dso.openadr]\nvtn_base_url = "https://vtn.example/openadr3/3.0.1"\n'
        'client_id = "netbewust"\nemergency_import_w = 150000\n'
        '[dso.openadr.eans]\n"871685900000000011" = "trafo-1"\n'
    )
    config = load_config(path, {"NETBEWUST_DSO_OPENADR_CLIENT_SECRET": "s3cret"})
    assert [account.name for account in config.dso.accounts] == ["stedin"]
    assert config.dso.non_member_estimate_w == {"trafo-1": 40000.0}
    ven = config.dso.ven
    assert ven is not None
    assert (ven.client_secret, ven.default_import_w) == ("s3cret", 200000.0)
    assert ven.eans.transformer_by_ean == {"871685900000000011": "trafo-1"}


@pytest.mark.parametrize(
    ("toml", "environ", "message"),
    [
        ('[dso.accounts]\nstedin = "not-a-digest"\n', {}, "SHA-256"),
        ("[dso]\ndefault_import_w = -5\n", {}, "default_import_w"),
        ("[dso]\nsurprise = 1\n", {}, "dso.surprise: unknown setting"),
        ('[dso.openadr]\nvtn_base_url = "https://x"\n', {}, "dso.openadr.client_id: is required"),
        (
            "",
            {"NETBEWUST_DSO_DEFAULT_IMPORT_W": "lots"},
            "dso.default_import_w: must be a valid number",
        ),
    ],
)
def test_bad_dso_settings_are_refused_clearly(
    tmp_path: Path, toml: str, environ: dict[str, str], message: str
) -> None:
    path = tmp_path / "server.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_config(path, environ)
