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
        ("[mqtt]\nprot = 1\n", {}, "unknown setting prot"),
        ("[mqtt]\nport = 'x'\n", {}, "mqtt.port"),
        ("[mqtt]\nport = true\n", {}, "mqtt.port"),
        ("[mqtt]\nport = 70000\n", {}, "not a port"),
        ("mqtt = 1\n", {}, "must be a table"),
        ("colour = 'red'\n", {}, "unknown setting colour"),
        ("[database\n", {}, "not valid TOML"),
        ("", {"NETBEWUST_MQTT_TLS": "maybe"}, "mqtt.tls"),
        ("", {"NETBEWUST_DATABASE_TELEMETRY_RETENTION_DAYS": "-1"}, "positive"),
        ("", {"NETBEWUST_WHATEVER": "1"}, "not a setting"),
        ("", {"NETBEWUST_LOG_LEVEL": "LOUD"}, "not a level"),
        ("[http]\ntls_cert_file = 'cert.pem'\n", {}, "go together"),
        ("", {"NETBEWUST_HTTP_PORT": "0"}, "http.port 0 is not a port"),
        ("", {"NETBEWUST_HTTP_PUBLIC_MQTT_PORT": "70000"}, "public_mqtt_port"),
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
