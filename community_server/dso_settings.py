"""The `[dso]` configuration section: DSO accounts, fallbacks and the optional OpenADR VEN.

TOML shape (tokens are stored as SHA-256 hex, never in the clear)::

    [dso]
    default_import_w = 200000           # conservative cap after a lost link
    [dso.accounts]                      # DSO name = SHA-256 of its bearer token
    stedin = "9f86d08..."
    [dso.non_member_estimate_w]         # per transformer, when the DSO measures nothing
    trafo-1 = 40000
    [dso.openadr]                       # optional: poll a VTN
    vtn_base_url = "https://vtn.example/openadr3/3.0.1"
    client_id = "netbewust"
    emergency_import_w = 150000
    [dso.openadr.eans]                  # EAN = transformer
    "871685900000000011" = "trafo-1"

Scalars can be overridden by `NETBEWUST_DSO_<KEY>` and `NETBEWUST_DSO_OPENADR_<KEY>`
(the client secret belongs there); `NETBEWUST_DSO_ACCOUNTS` takes `name=sha256,...`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from .dso.http_routes import DsoAccount
from .dso.openadr_events import EanMap
from .dso.ven import VenConfig

if TYPE_CHECKING:
    from collections.abc import Mapping

ENV_PREFIX = "NETBEWUST_DSO_"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_VERSIONS = ("3.0.1", "3.1.0")
_FLOATS = ("emergency_import_w", "poll_interval_s", "link_lost_after_s", "request_timeout_s")
_STRINGS = ("vtn_base_url", "client_id", "client_secret", "token_url", "callback_url")
_OPENADR_KEYS = {
    *_FLOATS,
    *_STRINGS,
    "version",
    "ven_name",
    "gac",
    "eans",
    "default_transformer",
    "allow_insecure_http",
}


class DsoConfigError(ValueError):
    """A `[dso]` setting that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DsoSettings:
    accounts: tuple[DsoAccount, ...] = ()
    default_import_w: float | None = None
    non_member_estimate_w: Mapping[str, float] = field(default_factory=dict)
    ven: VenConfig | None = None


def _number(value: object, where: str, *, positive: bool = False) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise DsoConfigError(f"{where}: {value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DsoConfigError(f"{where}: {value!r} is not a number")
    number = float(value)
    if not 0 <= number < float("inf") or (positive and number == 0):
        raise DsoConfigError(f"{where} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return number


def _flag(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.lower() in ("true", "1", "yes")
    raise DsoConfigError(f"{where}: {value!r} is not true or false")


def _table(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DsoConfigError(f"[{where}] must be a table")
    return cast("dict[str, Any]", value)


def _accounts(value: object) -> tuple[DsoAccount, ...]:
    if isinstance(value, str):  # from the environment: name=sha256,name=sha256
        pairs = [item.partition("=")[::2] for item in value.split(",") if item.strip()]
        value = {name.strip(): digest.strip() for name, digest in pairs}
    accounts = []
    for name, digest in _table(value, "dso.accounts").items():
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest.lower()):
            raise DsoConfigError(f"dso.accounts.{name}: not a SHA-256 hex digest of a token")
        accounts.append(DsoAccount(name=name, token_sha256=digest.lower()))
    return tuple(accounts)


def _ven(raw: dict[str, Any], settings: DsoSettings) -> VenConfig:
    unknown = sorted(set(raw) - _OPENADR_KEYS)
    if unknown:
        raise DsoConfigError(f"dso.openadr: unknown setting {', '.join(unknown)}")
    for required in ("vtn_base_url", "client_id", "client_secret", "emergency_import_w"):
        if not raw.get(required):
            raise DsoConfigError(f"dso.openadr.{required} is required")
    version = str(raw.get("version", "3.0.1"))
    if version not in _VERSIONS:
        raise DsoConfigError(f"dso.openadr.version must be one of {', '.join(_VERSIONS)}")
    eans = {str(ean): str(t) for ean, t in _table(raw.get("eans", {}), "dso.openadr.eans").items()}
    default_transformer = raw.get("default_transformer")
    options: dict[str, Any] = {
        key: _number(raw[key], f"dso.openadr.{key}", positive=True) for key in _FLOATS if key in raw
    }
    options |= {key: str(raw[key]) for key in _STRINGS if raw.get(key)}
    for key in ("gac", "allow_insecure_http"):
        if key in raw:
            options[key] = _flag(raw[key], f"dso.openadr.{key}")
    return VenConfig(
        **options,
        version=cast("Literal['3.0.1', '3.1.0']", version),
        ven_name=str(raw.get("ven_name", "netbewust")),
        eans=EanMap(eans, str(default_transformer) if default_transformer else None),
        default_import_w=settings.default_import_w,
        non_member_estimate_w=settings.non_member_estimate_w,
    )


def _environment(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Overlay NETBEWUST_DSO_* (and NETBEWUST_DSO_OPENADR_*) onto the TOML table."""
    for variable, value in environ.items():
        if not variable.startswith(ENV_PREFIX):
            continue
        key = variable.removeprefix(ENV_PREFIX).lower()
        if key.startswith("openadr_"):
            raw.setdefault("openadr", {})[key.removeprefix("openadr_")] = value
        else:
            raw[key] = value


def parse_dso(table: object, environ: Mapping[str, str]) -> DsoSettings:
    raw = dict(_table(table, "dso"))
    if "openadr" in raw:
        raw["openadr"] = dict(_table(raw["openadr"], "dso.openadr"))
    _environment(raw, environ)
    unknown = sorted(
        set(raw) - {"accounts", "default_import_w", "non_member_estimate_w", "openadr"}
    )
    if unknown:
        raise DsoConfigError(f"dso: unknown setting {', '.join(unknown)}")
    estimates = {
        str(transformer): _number(value, f"dso.non_member_estimate_w.{transformer}")
        for transformer, value in _table(
            raw.get("non_member_estimate_w", {}), "dso.non_member_estimate_w"
        ).items()
    }
    default = raw.get("default_import_w")
    settings = DsoSettings(
        accounts=_accounts(raw.get("accounts", {})),
        default_import_w=None if default is None else _number(default, "dso.default_import_w"),
        non_member_estimate_w=estimates,
    )
    if "openadr" not in raw:
        return settings
    return DsoSettings(
        accounts=settings.accounts,
        default_import_w=settings.default_import_w,
        non_member_estimate_w=settings.non_member_estimate_w,
        ven=_ven(raw["openadr"], settings),
    )
