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
(the client secret belongs there); `NETBEWUST_DSO_ACCOUNTS` takes `name=sha256,...` and
`NETBEWUST_DSO_NON_MEMBER_ESTIMATE_W` `transformer=watts,...`. Validated by pydantic
(`settings_validation`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, TypeAdapter

from .dso.http_routes import DsoAccount
from .dso.openadr_events import EanMap
from .dso.ven import VenConfig
from .settings_validation import STRICT, pairs, validate_section

if TYPE_CHECKING:
    from collections.abc import Mapping

ENV_PREFIX = "NETBEWUST_DSO_"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class DsoConfigError(ValueError):
    """A `[dso]` setting that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DsoSettings:
    accounts: tuple[DsoAccount, ...] = ()
    default_import_w: float | None = None
    non_member_estimate_w: Mapping[str, float] = field(default_factory=dict)
    ven: VenConfig | None = None


def _sha256(value: str) -> str:
    if not _SHA256.fullmatch(value.lower()):
        raise ValueError("not a SHA-256 hex digest of a token")
    return value.lower()


Watts = Annotated[float, Field(ge=0.0)]
Seconds = Annotated[float, Field(gt=0.0)]
Text = Annotated[str, Field(min_length=1)]


class _OpenAdrSection(BaseModel):
    """Unset options keep `VenConfig`'s defaults."""

    model_config = STRICT

    vtn_base_url: Text
    client_id: Text
    client_secret: Text
    emergency_import_w: Annotated[float, Field(gt=0.0)]
    token_url: Text | None = None
    callback_url: Text | None = None
    version: Literal["3.0.1", "3.1.0"] = "3.0.1"
    ven_name: Text = "netbewust"
    eans: dict[str, str] = {}
    default_transformer: Text | None = None
    poll_interval_s: Seconds = 30.0
    link_lost_after_s: Seconds = 120.0
    request_timeout_s: Seconds = 10.0
    gac: bool = True
    allow_insecure_http: bool = False


class _DsoSection(BaseModel):
    model_config = STRICT

    accounts: dict[str, Annotated[str, AfterValidator(_sha256)]] = {}
    default_import_w: Watts | None = None
    non_member_estimate_w: dict[str, Watts] = {}
    openadr: dict[str, object] | None = None  # validated as `_OpenAdrSection`


def _types(model: type[BaseModel]) -> dict[str, object]:
    return {name: info.rebuild_annotation() for name, info in model.model_fields.items()}


_DSO = TypeAdapter(_DsoSection)
_OPENADR = TypeAdapter(_OpenAdrSection)
_TABLES = {"accounts": "name=sha256", "non_member_estimate_w": "transformer=watts"}


def parse_dso(table: object, environ: Mapping[str, str]) -> DsoSettings:
    """The section from the TOML table overlaid by NETBEWUST_DSO_* variables."""
    if not isinstance(table, dict):
        raise DsoConfigError("[dso] must be a table")
    text = {
        variable.removeprefix(ENV_PREFIX).lower(): value
        for variable, value in environ.items()
        if variable.startswith(ENV_PREFIX)
    }
    openadr_text = {
        key.removeprefix("openadr_"): value
        for key, value in text.items()
        if key.startswith("openadr_")
    }
    overrides: dict[str, str | Mapping[str, str]] = {
        key: value for key, value in text.items() if not key.startswith("openadr_")
    }
    for key, form in _TABLES.items():
        if isinstance(value := overrides.get(key), str):
            overrides[key] = pairs(value, f"dso.{key}", form, DsoConfigError)
    section = validate_section(
        _DSO, _types(_DsoSection), table, overrides, where="dso", error=DsoConfigError
    )
    settings = DsoSettings(
        accounts=tuple(
            DsoAccount(name=name, token_sha256=digest) for name, digest in section.accounts.items()
        ),
        default_import_w=section.default_import_w,
        non_member_estimate_w=section.non_member_estimate_w,
    )
    if section.openadr is None and not openadr_text:
        return settings
    openadr = validate_section(
        _OPENADR,
        _types(_OpenAdrSection),
        section.openadr or {},
        openadr_text,
        where="dso.openadr",
        error=DsoConfigError,
    )
    options = openadr.model_dump(exclude={"eans", "default_transformer"})
    return DsoSettings(
        accounts=settings.accounts,
        default_import_w=settings.default_import_w,
        non_member_estimate_w=settings.non_member_estimate_w,
        ven=VenConfig(
            **options,
            eans=EanMap(openadr.eans, openadr.default_transformer),
            default_import_w=settings.default_import_w,
            non_member_estimate_w=settings.non_member_estimate_w,
        ),
    )
