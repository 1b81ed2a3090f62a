"""Server settings: safe defaults, one TOML file, and NETBEWUST_* environment overrides.

Every setting `key` in section `[section]` can be overridden by the environment
variable `NETBEWUST_SECTION_KEY` (for example `NETBEWUST_MQTT_PASSWORD`), so secrets
need not be written into the file. Each section is validated by pydantic
(`settings_validation`): the file strictly, the environment's text as its setting's type.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_type_hints

from pydantic import TypeAdapter
from pynordpool import AREAS

from .allocation_settings import AllocationConfigError, AllocationSettings, parse_allocation
from .dso_settings import DsoConfigError, DsoSettings, parse_dso
from .rate_limit import RateLimitConfig
from .settings_validation import validate_section

if TYPE_CHECKING:
    from collections.abc import Mapping

ENV_PREFIX = "NETBEWUST_"
MQTT_PROTOCOLS = ("5", "3.1.1")
MIN_PUBLIC_HOUSEHOLDS = 10  # an aggregate over fewer homes tells too much about each


class ConfigError(ValueError):
    """A configuration file or variable that cannot be used; the message says which."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseConfig:
    path: Path = Path("netbewust-server.db")
    telemetry_retention_days: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str = "netbewust_server"  # '_' never occurs in a household id
    password: str = field(default="", repr=False)
    client_id: str = "netbewust-server"
    keepalive_s: int = 30
    protocol: str = "5"  # "3.1.1" only for the embedded broker (amqtt has no MQTT 5)
    session_expiry_s: int = 7 * 24 * 3600
    tls: bool = False
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class MosquittoConfig:
    """How the server manages broker accounts (`community_server/mosquitto.py`); both off: not."""

    # Over mosquitto's dynamic-security plugin ($CONTROL/dynamic-security/v1).
    dynamic_security: bool = False
    auth_dir: str = ""  # the embedded broker: the accounts file is rewritten here

    def __post_init__(self) -> None:
        if self.dynamic_security and self.auth_dir:
            raise ConfigError("mosquitto: set dynamic_security or auth_dir, not both")


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpConfig:
    """The HTTP API, and the broker address it gives joining households."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8480
    tls_cert_file: str = ""
    tls_key_file: str = ""
    public_mqtt_host: str = ""  # empty: mqtt.host
    public_mqtt_port: int = 0  # 0: mqtt.port
    public_mqtt_tls: bool = False
    # `Authorization: Bearer <token>` reads GET /metrics; empty: operators only.
    metrics_token: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ZeroconfConfig:
    """Advertise the HTTP API as _netbewust._tcp.local. (on a LAN-facing http.host)."""

    enabled: bool = False
    name: str = "Netbewust community server"


@dataclass(frozen=True, slots=True, kw_only=True)
class DashboardConfig:
    """Operators log in to the dashboard; a public view, if enabled, shows aggregates only."""

    session_hours: float = 8.0  # an operator's session ends this long after logging in
    public: bool = False  # /dashboard/public and /api/v1/public for anyone
    public_min_households: int = 10  # a transformer with fewer members is not shown publicly

    def __post_init__(self) -> None:
        if not 0 < self.session_hours <= 24 * 30:
            raise ConfigError("dashboard.session_hours must be within (0, 720]")
        if self.public_min_households < MIN_PUBLIC_HOUSEHOLDS:
            raise ConfigError(
                f"dashboard.public_min_households must be at least {MIN_PUBLIC_HOUSEHOLDS}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class CommunityConfig:
    join_code_valid_hours: float = 72.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ForecastConfig:
    """The members' load from the daily mean outdoor temperature (`load_history`)."""

    # A CSV of `YYYY-MM-DD,mean_c` lines (observed and forecast daily means); empty: none.
    weather_file: str = ""
    weather_url: str = ""  # the same CSV over HTTP(S), fetched hourly; empty: none
    history_days: int = 1096  # daily aggregates kept: three years, apart from telemetry

    def __post_init__(self) -> None:
        if not 30 <= self.history_days <= 20 * 366:
            raise ConfigError("forecast.history_days must be within 30..7320")
        if self.weather_file and self.weather_url:
            raise ConfigError("forecast: set weather_file or weather_url, not both")
        if self.weather_url and not self.weather_url.startswith(("http://", "https://")):
            raise ConfigError("forecast.weather_url must be an http:// or https:// URL")


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectiveConfig:
    """The collective day-ahead plan: Nord Pool area and the members' all-in tariff."""

    enabled: bool = False
    area: str = "NL"
    energy_tax_eur_per_kwh: float = 0.0
    supplier_markup_eur_per_kwh: float = 0.0
    vat_pct: float = 0.0
    export_rule: str = "spot"  # spot, spot_minus_fee or fixed
    export_fee_eur_per_kwh: float = 0.0
    export_fixed_eur_per_kwh: float = 0.0
    replan_minutes: float = 15.0  # plan at least this often
    check_s: float = 30.0  # how often changed inputs are looked for
    debounce_s: float = 5.0  # a DSO signal re-plans after this quiet time
    # The share of the cap the plan leaves free: the live allocation aims 3 % below the
    # cap and the members' base load scatters around its forecast (docs/simulator.md).
    planning_margin_pct: float = 5.0
    # Import headroom on every planned limit, in % of the member's highest forecast base
    # load that day: 3 standard deviations of a 20 % minute scatter, as simulated.
    limit_headroom_pct: float = 60.0

    def __post_init__(self) -> None:
        if self.area not in AREAS:
            raise ConfigError(f"collective.area {self.area!r} is not a Nord Pool area")
        if self.export_rule not in ("spot", "spot_minus_fee", "fixed"):
            raise ConfigError("collective.export_rule must be spot, spot_minus_fee or fixed")
        if not 0 <= self.vat_pct <= 100:
            raise ConfigError("collective.vat_pct must be within 0..100")
        if not 0 < self.replan_minutes <= 60:
            raise ConfigError("collective.replan_minutes must be within (0, 60]")
        if self.check_s <= 0 or self.debounce_s < 0:
            raise ConfigError("collective.check_s must be positive, debounce_s not negative")
        if not 0 <= self.planning_margin_pct < 50:
            raise ConfigError("collective.planning_margin_pct must be within [0, 50)")
        if not 0 <= self.limit_headroom_pct <= 300:
            raise ConfigError("collective.limit_headroom_pct must be within 0..300")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    mosquitto: MosquittoConfig = field(default_factory=MosquittoConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    zeroconf: ZeroconfConfig = field(default_factory=ZeroconfConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    community: CommunityConfig = field(default_factory=CommunityConfig)
    dso: DsoSettings = field(default_factory=DsoSettings)
    allocation: AllocationSettings = field(default_factory=AllocationSettings)
    collective: CollectiveConfig = field(default_factory=CollectiveConfig)
    forecast: ForecastConfig = field(default_factory=ForecastConfig)
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        for name, port in (("mqtt.port", self.mqtt.port), ("http.port", self.http.port)):
            if not 0 < port < 65536:
                raise ConfigError(f"{name} {port} is not a port")
        if not 0 <= self.http.public_mqtt_port < 65536:
            raise ConfigError(f"http.public_mqtt_port {self.http.public_mqtt_port} is not a port")
        if not 0 < len(self.zeroconf.name) <= 63 or "." in self.zeroconf.name:
            raise ConfigError("zeroconf.name must be 1-63 characters without dots")
        if bool(self.http.tls_cert_file) != bool(self.http.tls_key_file):
            raise ConfigError("http.tls_cert_file and http.tls_key_file go together")
        if self.database.path == Path():  # "" reads as the current directory
            raise ConfigError("database.path must name a file")
        if self.database.telemetry_retention_days <= 0:
            raise ConfigError("database.telemetry_retention_days must be positive")
        if self.community.join_code_valid_hours <= 0:
            raise ConfigError("community.join_code_valid_hours must be positive")
        if self.mqtt.protocol not in MQTT_PROTOCOLS:
            raise ConfigError(f"mqtt.protocol must be one of {', '.join(MQTT_PROTOCOLS)}")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"log_level {self.log_level!r} is not a level")


_SECTIONS: dict[str, type[Any]] = {
    "database": DatabaseConfig,
    "mqtt": MqttConfig,
    "mosquitto": MosquittoConfig,
    "http": HttpConfig,
    "zeroconf": ZeroconfConfig,
    "dashboard": DashboardConfig,
    "community": CommunityConfig,
    "collective": CollectiveConfig,
    "forecast": ForecastConfig,
    "rate_limit": RateLimitConfig,
}


def _build(
    cls: type[Any], table: Mapping[str, object], environ: Mapping[str, str], where: str
) -> Any:
    """One section from its table and its NETBEWUST_SECTION_* text, by pydantic."""
    return validate_section(
        TypeAdapter(cls), get_type_hints(cls), table, environ, where=where, error=ConfigError
    )


def load_config(path: Path | None, environ: Mapping[str, str]) -> ServerConfig:
    """Defaults, overlaid by the TOML file (if any), overlaid by NETBEWUST_* variables."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text())
        except OSError as err:
            raise ConfigError(f"cannot read {path}: {err.strerror}") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path} is not valid TOML: {err}") from None
    sections: dict[str, dict[str, object]] = {name: {} for name in _SECTIONS}
    overrides: dict[str, dict[str, str]] = {name: {} for name in _SECTIONS}
    top: dict[str, object] = {}
    # [dso] has nested tables and lists; it is parsed by its own module.
    dso = _dso(raw.pop("dso", {}), environ)
    allocation = _allocation(raw.pop("allocation", {}), environ)
    for key, value in raw.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"[{key}] must be a table")
            sections[key].update(value)
        else:
            top[key] = value
    for variable, value in environ.items():
        if not variable.startswith(ENV_PREFIX):
            continue
        name = variable.removeprefix(ENV_PREFIX).lower()
        if name.startswith(("dso_", "allocation_")):
            continue
        section = next((s for s in _SECTIONS if name.startswith(f"{s}_")), None)
        if section is not None:
            overrides[section][name.removeprefix(f"{section}_")] = value
        elif name == "log_level":
            top[name] = value
        elif name != "config":
            raise ConfigError(f"{variable} is not a setting")
    built = {
        name: _build(cls, sections[name], overrides[name], name) for name, cls in _SECTIONS.items()
    }
    unknown = sorted(set(top) - {"log_level"})
    if unknown:
        raise ConfigError(f"unknown setting {', '.join(unknown)}")
    log_level = top.get("log_level", "INFO")
    if not isinstance(log_level, str):
        raise ConfigError(f"log_level: must be a string, got {log_level!r}")
    return ServerConfig(log_level=log_level, dso=dso, allocation=allocation, **built)


def _dso(table: object, environ: Mapping[str, str]) -> DsoSettings:
    try:
        return parse_dso(table, environ)
    except (DsoConfigError, TypeError) as err:
        raise ConfigError(str(err)) from None


def _allocation(table: object, environ: Mapping[str, str]) -> AllocationSettings:
    try:
        return parse_allocation(table, environ)
    except AllocationConfigError as err:
        raise ConfigError(str(err)) from None
