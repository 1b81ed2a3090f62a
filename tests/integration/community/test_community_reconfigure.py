"""Reconfiguring a membership, household details and a cooperative's own CA."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import SOURCE_RECONFIGURE
from homeassistant.data_entry_flow import FlowResultType

from custom_components.netbewust.community.const import (
    CONF_CA_CERT,
    CONF_EAN,
    CONF_HOUSEHOLD,
    CONF_SERVER_URL,
    CONF_TARIFF_CLASS,
)
from custom_components.netbewust.const import DOMAIN
from tests.server.household_client import wait_until

from .conftest import Community, join, membership
from .test_community_flow import community_form

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    from community_server.mosquitto import TlsFiles

EAN = "871685900000000004"  # 18 digits, valid GS1 check digit


async def reconfigure(hass: HomeAssistant, entry: ConfigEntry) -> dict[str, Any]:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry.entry_id}
    )
    return dict(result)


async def configure(hass: HomeAssistant, flow_id: str, **fields: str) -> dict[str, Any]:
    return dict(await hass.config_entries.flow.async_configure(flow_id, fields))


async def test_a_membership_has_its_own_reconfigure_step(
    hass: HomeAssistant, community: Community, connection: MockConfigEntry
) -> None:
    entry = await join(hass, community, connection)
    form = await reconfigure(hass, entry)
    # Not the connection's fuse form: the membership's own.
    assert form["type"] is FlowResultType.FORM
    assert form["step_id"] == "reconfigure_community"
    flow_id = form["flow_id"]
    url = entry.data[CONF_SERVER_URL]

    bad = await configure(
        hass, flow_id, server_url=url, ean="871685900000000005", tariff_class="3x25A!"
    )
    assert bad["errors"] == {"ean": "invalid_ean", "tariff_class": "invalid_tariff_class"}
    moved = await configure(hass, flow_id, server_url="http://127.0.0.1:1")
    assert moved["errors"] == {"join_code": "community_code_required"}
    wrong = await configure(hass, flow_id, server_url="ftp://coop")
    assert wrong["errors"] == {"server_url": "invalid_url"}
    broken_ca = await configure(
        hass, flow_id, server_url=url, ca_cert="-----BEGIN CERTIFICATE-----\nnonsense\n"
    )
    assert broken_ca["errors"] == {"ca_cert": "invalid_ca_cert"}

    # Same server, no code: the present credentials are tested, the details saved.
    household = entry.data[CONF_HOUSEHOLD]
    done = await configure(hass, flow_id, server_url=url, ean=EAN, tariff_class="3x25A")
    assert done["type"] is FlowResultType.ABORT
    assert done["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert (entry.data[CONF_EAN], entry.data[CONF_TARIFF_CLASS]) == (EAN, "3x25A")
    assert entry.data[CONF_HOUSEHOLD] == household
    await wait_until(lambda: membership(entry).link_up)

    # A new code: joined again as a new household of the same community.
    form = await reconfigure(hass, entry)
    rejoined = await configure(
        hass, form["flow_id"], server_url=url, join_code=community.join_code(), ean=EAN
    )
    assert rejoined["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.data[CONF_HOUSEHOLD] != household
    assert entry.unique_id == f"wijk-1/{entry.data[CONF_HOUSEHOLD]}"
    assert entry.data[CONF_TARIFF_CLASS] is None  # cleared in the form
    await wait_until(lambda: membership(entry).link_up)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_spent_code_on_reconfigure_changes_nothing(
    hass: HomeAssistant, community: Community, connection: MockConfigEntry
) -> None:
    entry = await join(hass, community, connection)
    before = dict(entry.data)
    form = await reconfigure(hass, entry)
    result = await configure(
        hass, form["flow_id"], server_url=before[CONF_SERVER_URL], join_code="ABCD-EFGH-JKLM"
    )
    assert result["errors"] == {"base": "invalid_join_code"}
    assert dict(entry.data) == before
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_the_cooperatives_own_ca_is_trusted_for_https_and_mqtt(
    hass: HomeAssistant,
    tls_community: Community,
    community_tls: TlsFiles,
    connection: MockConfigEntry,
) -> None:
    ca_pem = await hass.async_add_executor_job(community_tls.ca_file.read_text)
    form = await community_form(hass)
    garbage = await hass.config_entries.flow.async_configure(
        form["flow_id"],
        {
            "server_url": tls_community.url,
            "join_code": "ABCD-EFGH-JKLM",
            "connection_entry_id": connection.entry_id,
            "ca_cert": "a private key, not a certificate",
        },
    )
    assert garbage["errors"] == {"ca_cert": "invalid_ca_cert"}
    hass.config_entries.flow.async_abort(form["flow_id"])

    entry = await join(hass, tls_community, connection, ca_cert=ca_pem)
    assert entry.data[CONF_CA_CERT] == ca_pem.strip()
    assert membership(entry).membership.mqtt.tls
    assert await hass.config_entries.async_unload(entry.entry_id)
