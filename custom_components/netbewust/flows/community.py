"""Config flow steps for joining a community (mixed into the domain's config flow).

A membership is its own config entry, linked to a guarded connection entry, so
zeroconf discovery, manual URL entry and reauthentication work the standard way.
Nothing is created until the HTTP join and an MQTT connect have both succeeded.

A server discovered at a new address is matched to a membership by its identity, never
by the address. Only a membership that stored the `server_id` the server announces is a
candidate (the id comes from the server's info document when joining); nothing is sent
for any other membership, nor for an announcement without an id. A candidate is then
confirmed with its household's credentials: the server must answer for that household
and name the same community. Only then is the stored address updated and the membership
reloaded.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from dataclasses import replace
from enum import Enum
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import aiohttp
import probatio
from homeassistant.config_entries import ConfigEntryState, ConfigFlow, ConfigFlowResult
from homeassistant.data_entry_flow import AbortFlow
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
)

from ..community.const import (
    CONF_CA_CERT,
    CONF_COMMUNITY,
    CONF_CONNECTION_ENTRY,
    CONF_EAN,
    CONF_ENTRY_KIND,
    CONF_HOUSEHOLD,
    CONF_JOIN_CODE,
    CONF_MQTT_HOST,
    CONF_MQTT_PASSWORD,
    CONF_MQTT_USERNAME,
    CONF_SERVER_ID,
    CONF_SERVER_URL,
    CONF_TARIFF_CLASS,
    ENTRY_KIND_COMMUNITY,
    TXT_SERVER_ID,
    is_community_entry,
)
from ..community.join import (
    JOIN_PATH,
    JoinError,
    Membership,
    async_join,
    async_server_id,
    normalise_url,
    trust_context,
    valid_server_id,
    validate_ca_pem,
)
from ..community.mqtt_client import ProbeResult, probe
from ..community.setup import membership_data, membership_from_data
from ..const import DOMAIN, LOGGER
from ..core.protocol.messages import PROTOCOL_VERSION, Capabilities, ProtocolError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from homeassistant.config_entries import ConfigEntry
    from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo

# The API base the server announces in its TXT record ("path"); the join is under it.
API_PATH = JOIN_PATH.removesuffix("/join")
IDENTITY_TIMEOUT_S = 10.0

_PROBE_ERRORS = {
    ProbeResult.CANNOT_CONNECT: "mqtt_cannot_connect",
    ProbeResult.INVALID_AUTH: "mqtt_invalid_auth",
    ProbeResult.TLS_ERROR: "tls_error",
}


# Optional household details, asked when joining and when reconfiguring.
DETAIL_FIELDS = {
    probatio.Optional(CONF_EAN): TextSelector(),
    probatio.Optional(CONF_TARIFF_CLASS): TextSelector(),
    probatio.Optional(CONF_CA_CERT): TextSelector(TextSelectorConfig(multiline=True)),
}


class Identity(Enum):
    """What a discovered server says about one membership's household."""

    SAME = "same"  # it knows the household's credentials and names the same community
    OTHER = "other"  # it does not know them (or cannot be asked): another server
    MISMATCH = "mismatch"  # it accepts the credentials but names another household/community


def discovered_server_id(discovery_info: ZeroconfServiceInfo) -> tuple[bool, str | None]:
    """(well-formed, id): an announcement without an id is well-formed, with None."""
    server_id = discovery_info.properties.get(TXT_SERVER_ID)
    if server_id is None:
        return True, None
    return (True, server_id) if valid_server_id(server_id) else (False, None)


def discovered_url(discovery_info: ZeroconfServiceInfo) -> str | None:
    """The API base URL a well-formed announcement points at, or None when it is malformed.

    The protocol version is checked by the caller (its own abort reason).
    """
    properties = discovery_info.properties
    tls = properties.get("tls")
    if tls not in ("0", "1") or properties.get("path") != API_PATH:
        return None
    port = discovery_info.port
    if port is None or not 0 < port < 65536:
        return None
    address = discovery_info.ip_address  # zeroconf always gives an address, never a name
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"{'https' if tls == '1' else 'http'}://{host}:{port}"


def _ip_host(url: str) -> str | None:
    """The URL's host when it is an IP address literal (a DNS name follows a server itself)."""
    host = urlsplit(url).hostname
    if host is None:
        return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


async def async_identify(
    session: aiohttp.ClientSession,
    url: str,
    data: Mapping[str, Any],
    trust: ssl.SSLContext | None,
) -> Identity:
    """Ask the server at `url` for the membership's household, with its own credentials."""
    household = str(data[CONF_HOUSEHOLD])
    authorization = aiohttp.encode_basic_auth(
        str(data[CONF_MQTT_USERNAME]), str(data[CONF_MQTT_PASSWORD])
    )
    try:
        async with asyncio.timeout(IDENTITY_TIMEOUT_S):
            async with session.get(
                f"{url}{API_PATH}/households/{quote(household, safe='')}",
                headers={"Authorization": authorization},
                ssl=trust or True,
                allow_redirects=False,
            ) as response:
                if response.status != 200:
                    return Identity.OTHER
                document = await response.json(content_type=None)
    except aiohttp.ClientError, ssl.SSLError, TimeoutError, OSError, ValueError:
        return Identity.OTHER
    if (
        isinstance(document, dict)
        and document.get("household") == household
        and document.get("community") == data[CONF_COMMUNITY]
    ):
        return Identity.SAME
    return Identity.MISMATCH


def membership_unique_id(membership: Membership) -> str:
    return f"{membership.community}/{membership.household}"


def joined_data(membership: Membership) -> dict[str, Any]:
    """Entry data from a join: the membership's, and the server's identity."""
    return {**membership_data(membership), CONF_SERVER_ID: membership.server_id}


def _accepted(*, ean: str | None = None, tariff_class: str | None = None) -> bool:
    try:
        Capabilities(phases=1, fuse_current_a=25.0, ean=ean, tariff_class=tariff_class)
    except ProtocolError:
        return False
    return True


def household_details(user_input: dict[str, Any], errors: dict[str, str]) -> dict[str, str | None]:
    """EAN, tariff class and CA from the form, checked by the protocol's own rules."""
    details: dict[str, str | None] = {
        key: (str(user_input.get(key) or "").strip() or None)
        for key in (CONF_EAN, CONF_TARIFF_CLASS, CONF_CA_CERT)
    }
    # The protocol's own checks: what is saved is what the server will accept.
    if (ean := details[CONF_EAN]) is not None and not _accepted(ean=ean):
        errors[CONF_EAN] = "invalid_ean"
    if (tariff := details[CONF_TARIFF_CLASS]) is not None and not _accepted(tariff_class=tariff):
        errors[CONF_TARIFF_CLASS] = "invalid_tariff_class"
    if (pem := details[CONF_CA_CERT]) is not None:
        try:
            details[CONF_CA_CERT] = validate_ca_pem(pem)
        except JoinError as err:
            LOGGER.info("A community CA certificate was refused: %s", err)
            errors[CONF_CA_CERT] = err.code
    return details


class CommunityFlowMixin(ConfigFlow):
    """Steps `zeroconf`, `community`, `reauth`, `reauth_confirm`, `reconfigure_community`."""

    _community_url: str | None = None
    # Credentials from a join whose MQTT test failed: the code is spent, so keep them.
    _joined: tuple[str, Membership] | None = None

    def _connection_entries(self) -> list[ConfigEntry]:
        return [
            entry
            for entry in self.hass.config_entries.async_entries(DOMAIN)
            if not is_community_entry(entry.data) and entry.state is ConfigEntryState.LOADED
        ]

    def _community_can_join(self) -> bool:
        return bool(self._connection_entries())

    async def async_step_zeroconf(self, discovery_info: ZeroconfServiceInfo) -> ConfigFlowResult:
        protocol = discovery_info.properties.get("protocol")
        if protocol is not None and protocol != str(PROTOCOL_VERSION):
            return self.async_abort(reason="unsupported_protocol")
        url = discovered_url(discovery_info)
        well_formed, server_id = discovered_server_id(discovery_info)
        if protocol is None or url is None or not well_formed:
            LOGGER.info("Ignored a malformed community server announcement: %s", discovery_info)
            return self.async_abort(reason="invalid_discovery_info")
        # A membership at this very address: nothing to update, nothing to reload.
        self._async_abort_entries_match({CONF_SERVER_URL: url})
        await self.async_set_unique_id(f"discovered {url}")
        self._abort_if_unique_id_configured()
        if server_id is not None:
            await self._async_update_moved_membership(url, server_id)
        self._community_url = url
        name = discovery_info.name.removesuffix(f".{discovery_info.type}")
        self.context["title_placeholders"] = {"name": name}
        return await self.async_step_community()

    async def _async_update_moved_membership(self, url: str, server_id: str) -> None:
        """Abort `already_configured` if a membership's server moved to `url`, updated and reloaded.

        Candidates are only memberships that stored `server_id` (one joined before servers
        had an id is never asked), stored under an IP address (a DNS name follows its
        server by itself), and never an HTTPS one found over plain HTTP: the confirmation
        sends the household's credentials.
        """
        new_host = _ip_host(url)
        https = url.startswith("https:")
        mismatch = False
        session = async_get_clientsession(self.hass)
        for entry in self.hass.config_entries.async_entries(DOMAIN, include_ignore=False):
            stored = entry.data.get(CONF_SERVER_URL)
            if (
                not is_community_entry(entry.data)
                or entry.data.get(CONF_SERVER_ID) != server_id
                or entry.unique_id is None
                or not isinstance(stored, str)
                or (old_host := _ip_host(stored)) is None
                or (stored.startswith("https:") and not https)
            ):
                continue
            try:
                ca_pem = entry.data.get(CONF_CA_CERT)
                trust = (
                    await self.hass.async_add_executor_job(trust_context, ca_pem)
                    if ca_pem
                    else None
                )
                identity = await async_identify(session, url, entry.data, trust)
            except KeyError, ssl.SSLError, ValueError:
                continue
            if identity is Identity.MISMATCH:
                LOGGER.warning(
                    "The community server discovered at %s accepts the credentials of %s "
                    "but is not its server; the membership keeps %s",
                    url,
                    entry.title,
                    stored,
                )
                mismatch = True
                continue
            if identity is not Identity.SAME:
                continue
            updates: dict[str, Any] = {CONF_SERVER_URL: url}
            # A broker on the API's own address moved along with it.
            if entry.data.get(CONF_MQTT_HOST) == old_host and new_host is not None:
                updates[CONF_MQTT_HOST] = new_host
            LOGGER.info("The community server of %s moved from %s to %s", entry.title, stored, url)
            await self.async_set_unique_id(entry.unique_id, raise_on_progress=False)
            self._abort_if_unique_id_configured(updates=updates)
        if mismatch:
            raise AbortFlow("discovery_identity_mismatch")

    async def async_step_community(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        connections = self._connection_entries()
        if not connections:
            return self.async_abort(reason="community_needs_connection")
        errors: dict[str, str] = {}
        if user_input is not None:
            connection_id = user_input[CONF_CONNECTION_ENTRY]
            details = household_details(user_input, errors)
            if connection_id not in {entry.entry_id for entry in connections}:
                errors[CONF_CONNECTION_ENTRY] = "community_no_connection"
            elif not errors:
                url, membership = await self._async_join(user_input, details[CONF_CA_CERT], errors)
                if membership is not None and url is not None:
                    return await self._async_create_membership(
                        url, membership, connection_id, details
                    )
        schema = probatio.Schema(
            {
                probatio.Required(CONF_SERVER_URL): TextSelector(),
                probatio.Required(CONF_JOIN_CODE): TextSelector(),
                probatio.Required(CONF_CONNECTION_ENTRY): SelectSelector(
                    SelectSelectorConfig(
                        options=[
                            SelectOptionDict(value=entry.entry_id, label=entry.title)
                            for entry in connections
                        ],
                        mode=SelectSelectorMode.DROPDOWN,
                    )
                ),
                **DETAIL_FIELDS,
            }
        )
        suggested = {
            CONF_SERVER_URL: self._community_url or "",
            CONF_CONNECTION_ENTRY: connections[0].entry_id,
            **(user_input or {}),
        }
        return self.async_show_form(
            step_id="community",
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
        )

    async def _async_join(
        self, user_input: dict[str, Any], ca_pem: str | None, errors: dict[str, str]
    ) -> tuple[str | None, Membership | None]:
        """Join (once per code) and test MQTT; fills `errors` and returns Nones on failure."""
        try:
            url = normalise_url(str(user_input.get(CONF_SERVER_URL, self._community_url or "")))
            if self._joined is not None and self._joined[0] == url:
                membership = self._joined[1]
            else:
                trust = (
                    await self.hass.async_add_executor_job(trust_context, ca_pem)
                    if ca_pem
                    else None
                )
                session = async_get_clientsession(self.hass)
                membership = await async_join(
                    session, url, str(user_input.get(CONF_JOIN_CODE, "")), trust
                )
                self._joined = (url, membership)
        except JoinError as err:
            LOGGER.info("Joining a community failed: %s", err)
            errors["base"] = err.code
            return None, None
        membership = replace(membership, mqtt=replace(membership.mqtt, ca_pem=ca_pem))
        if not await self._async_probe(membership, errors):
            return None, None
        return url, membership

    async def _async_probe(self, membership: Membership, errors: dict[str, str]) -> bool:
        result = await self.hass.async_add_executor_job(probe, membership.mqtt)
        if result is not ProbeResult.OK:
            LOGGER.info("The community broker test failed: %s", result)
            errors["base"] = _PROBE_ERRORS[result]
        return result is ProbeResult.OK

    async def _async_create_membership(
        self,
        url: str,
        membership: Membership,
        connection_id: str,
        details: dict[str, str | None],
    ) -> ConfigFlowResult:
        await self.async_set_unique_id(membership_unique_id(membership), raise_on_progress=False)
        self._abort_if_unique_id_configured()
        self._async_abort_entries_match(
            {CONF_COMMUNITY: membership.community, CONF_CONNECTION_ENTRY: connection_id}
        )
        connection = self.hass.config_entries.async_get_entry(connection_id)
        title = f"{membership.community} ({connection.title if connection else connection_id})"
        return self.async_create_entry(
            title=title,
            data={
                CONF_ENTRY_KIND: ENTRY_KIND_COMMUNITY,
                CONF_SERVER_URL: url,
                CONF_CONNECTION_ENTRY: connection_id,
                **joined_data(membership),
                CONF_EAN: details[CONF_EAN],
                CONF_TARIFF_CLASS: details[CONF_TARIFF_CLASS],
            },
        )

    async def async_step_reauth(self, entry_data: dict[str, Any]) -> ConfigFlowResult:
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Revoked credentials: a new join code from the cooperative gives new ones."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            url, membership = await self._async_join(
                {CONF_SERVER_URL: entry.data[CONF_SERVER_URL], **user_input},
                entry.data.get(CONF_CA_CERT),
                errors,
            )
            if membership is not None and membership.community != entry.data[CONF_COMMUNITY]:
                errors["base"] = "wrong_community"
                self._joined = None
            elif membership is not None and url is not None:
                return self.async_update_reload_and_abort(
                    entry,
                    unique_id=membership_unique_id(membership),
                    data_updates=joined_data(membership),
                )
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=probatio.Schema({probatio.Required(CONF_JOIN_CODE): TextSelector()}),
            errors=errors,
            description_placeholders={"community": entry.data[CONF_COMMUNITY]},
        )

    async def async_step_reconfigure_community(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the server URL, re-join with a new code, or edit the household details.

        A new URL needs a new join code (the credentials belong to the old server);
        without a code the present credentials are tested again before saving.
        """
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            details = household_details(user_input, errors)
            code = str(user_input.get(CONF_JOIN_CODE) or "").strip()
            try:
                url = normalise_url(str(user_input[CONF_SERVER_URL]))
            except JoinError as err:
                errors[CONF_SERVER_URL] = err.code
                url = None
            if url is not None and not errors:
                result = await self._async_reconfigure(entry, url, code, details, errors)
                if result is not None:
                    return result
        schema = probatio.Schema(
            {
                probatio.Required(CONF_SERVER_URL): TextSelector(),
                probatio.Optional(CONF_JOIN_CODE): TextSelector(),
                **DETAIL_FIELDS,
            }
        )
        suggested = {**entry.data, CONF_JOIN_CODE: "", **(user_input or {})}
        return self.async_show_form(
            step_id="reconfigure_community",
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
            description_placeholders={"community": entry.data[CONF_COMMUNITY]},
        )

    async def _async_reconfigure(
        self,
        entry: ConfigEntry,
        url: str,
        code: str,
        details: dict[str, str | None],
        errors: dict[str, str],
    ) -> ConfigFlowResult | None:
        ca_pem = details[CONF_CA_CERT]
        updates: dict[str, Any] = {
            CONF_SERVER_URL: url,
            CONF_EAN: details[CONF_EAN],
            CONF_TARIFF_CLASS: details[CONF_TARIFF_CLASS],
        }
        if code:
            _url, joined = await self._async_join(
                {CONF_SERVER_URL: url, CONF_JOIN_CODE: code}, ca_pem, errors
            )
            if joined is None:
                return None
            if joined.community != entry.data[CONF_COMMUNITY]:
                errors["base"] = "wrong_community"
                self._joined = None
                return None
            return self.async_update_reload_and_abort(
                entry,
                unique_id=membership_unique_id(joined),
                data_updates={**updates, **joined_data(joined)},
            )
        if url != entry.data[CONF_SERVER_URL]:
            errors[CONF_JOIN_CODE] = "community_code_required"
            return None
        present = membership_from_data(entry.data)
        tested = replace(present, mqtt=replace(present.mqtt, ca_pem=ca_pem))
        if not await self._async_probe(tested, errors):
            return None
        server_id = await self._async_confirmed_server_id(url, entry.data, ca_pem)
        if server_id is not None:
            updates[CONF_SERVER_ID] = server_id
        return self.async_update_reload_and_abort(
            entry, data_updates={**updates, **membership_data(tested)}
        )

    async def _async_confirmed_server_id(
        self, url: str, data: Mapping[str, Any], ca_pem: str | None
    ) -> str | None:
        """The id of the membership's own server at `url` (best effort), or None.

        Recorded only when that server also answers for the household with its
        credentials, so an address now held by another server records nothing.
        """
        session = async_get_clientsession(self.hass)
        try:
            trust = (
                await self.hass.async_add_executor_job(trust_context, ca_pem) if ca_pem else None
            )
            server_id = await async_server_id(session, url, trust)
            if server_id is None:
                return None
            identity = await async_identify(session, url, data, trust)
        except JoinError, KeyError, ssl.SSLError, ValueError:
            LOGGER.info("Could not record the identity of the server at %s", url)
            return None
        if identity is not Identity.SAME:
            LOGGER.info("The server at %s does not answer for this household", url)
            return None
        return server_id
