"""The community flows' less travelled paths: what a membership entry offers, the menu's
connection choice, discovery that must confirm nothing, a join code of another community,
a broker that is down on reconfigure, and a server whose identity cannot be recorded."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from homeassistant.config_entries import SOURCE_REAUTH, SOURCE_USER, ConfigEntryState
from homeassistant.data_entry_flow import FlowResultType

from custom_components.netbewust.community.const import (
    CONF_CA_CERT,
    CONF_SERVER_ID,
    CONF_SERVER_URL,
)
from custom_components.netbewust.const import DOMAIN
from tests.clock import clock_now
from tests.server.conftest import free_port

from ..conftest import CHARGER, set_meter
from .conftest import Community, join
from .test_community_discovery import (
    API,
    OTHER_ID,
    SERVER_ID,
    FakeServer,
    announcement,
    discover,
    fake_server,
    port_of,
    stored_membership,
)
from .test_community_flow import community_form
from .test_community_reconfigure import configure, reconfigure

if TYPE_CHECKING:
    from collections.abc import Callable

    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry

__all__ = ["fake_server"]  # the fixture, shared with the discovery tests

OTHER_COMMUNITY = "wijk-2"


def other_community_code(community: Community) -> str:
    """A valid join code, of another community on the same server."""
    community.store.create_community(OTHER_COMMUNITY, "Wijk Twee", clock_now())
    return community.store.issue_join_code(OTHER_COMMUNITY, clock_now(), timedelta(hours=1)).code


async def test_a_membership_offers_no_options_and_no_devices(
    hass: HomeAssistant, community: Community, connection: MockConfigEntry
) -> None:
    entry = await join(hass, community, connection)
    assert (entry.supports_options, entry.supported_subentry_types) == (False, {})
    assert connection.supports_options
    assert "modbus_device" in connection.supported_subentry_types
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_the_menu_also_leads_to_another_connection(
    hass: HomeAssistant, connection: MockConfigEntry
) -> None:
    menu = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert menu["type"] is FlowResultType.MENU
    result = await hass.config_entries.flow.async_configure(
        menu["flow_id"], {"next_step_id": "connection"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"  # the connection's own form
    schema = result["data_schema"]
    assert schema is not None
    assert "connection_type" in {str(key) for key in schema.schema}


async def test_a_connection_removed_while_the_form_is_open_is_an_error(
    hass: HomeAssistant,
    connection: MockConfigEntry,
    make_entry: Callable[..., MockConfigEntry],
) -> None:
    second = make_entry(subentries=(CHARGER,))
    set_meter(hass, 1000)
    assert await hass.config_entries.async_setup(second.entry_id)
    form = await community_form(hass)
    assert await hass.config_entries.async_remove(second.entry_id)
    result = await hass.config_entries.flow.async_configure(
        form["flow_id"],
        {
            "server_url": "http://127.0.0.1:1",
            "join_code": "ABCD-EFGH-JKLM",
            "connection_entry_id": second.entry_id,
        },
    )
    assert result["errors"] == {"connection_entry_id": "community_no_connection"}


async def test_a_stored_address_without_a_host_is_left_alone(
    hass: HomeAssistant, fake_server: FakeServer
) -> None:
    entry = stored_membership(hass, "not a url")
    await discover(hass, announcement(port_of(fake_server.url)))
    assert fake_server.credentialed() == []
    assert entry.data[CONF_SERVER_URL] == "not a url"


async def test_a_server_that_does_not_answer_confirms_nothing(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    entry = stored_membership(hass, "http://192.0.2.10:8480")
    result = await discover(hass, announcement(free_port()))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "community_needs_connection"  # offered as new: no connection
    assert entry.data[CONF_SERVER_URL] == "http://192.0.2.10:8480"


async def test_a_membership_with_an_unreadable_ca_is_not_asked(
    hass: HomeAssistant, fake_server: FakeServer
) -> None:
    entry = stored_membership(hass, "https://192.0.2.10:8480")
    hass.config_entries.async_update_entry(
        entry, data={**entry.data, CONF_CA_CERT: "-----BEGIN CERTIFICATE-----\nnonsense\n"}
    )
    properties = {"path": API, "protocol": "1", "tls": "1", "server_id": SERVER_ID}
    await discover(hass, announcement(port_of(fake_server.url), properties=properties))
    assert fake_server.requests == []
    assert entry.data[CONF_SERVER_URL] == "https://192.0.2.10:8480"


async def test_reauth_with_a_code_of_another_community_is_refused(
    hass: HomeAssistant, community: Community, connection: MockConfigEntry
) -> None:
    entry = await join(hass, community, connection)
    before = dict(entry.data)
    form = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_REAUTH, "entry_id": entry.entry_id}, data=before
    )
    result = await configure(hass, form["flow_id"], join_code=other_community_code(community))
    assert result["errors"] == {"base": "wrong_community"}
    assert dict(entry.data) == before
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_reconfigure_with_a_code_of_another_community_is_refused(
    hass: HomeAssistant, community: Community, connection: MockConfigEntry
) -> None:
    entry = await join(hass, community, connection)
    before = dict(entry.data)
    form = await reconfigure(hass, entry)
    result = await configure(
        hass,
        form["flow_id"],
        server_url=before[CONF_SERVER_URL],
        join_code=other_community_code(community),
    )
    assert result["errors"] == {"base": "wrong_community"}
    assert dict(entry.data) == before
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_reconfigure_without_a_code_needs_the_broker(
    hass: HomeAssistant, community: Community, connection: MockConfigEntry
) -> None:
    entry = await join(hass, community, connection)
    before = dict(entry.data)
    community.broker.process.terminate()
    community.broker.process.wait()
    form = await reconfigure(hass, entry)
    result = await configure(hass, form["flow_id"], server_url=before[CONF_SERVER_URL])
    assert result["errors"] == {"base": "mqtt_cannot_connect"}
    assert dict(entry.data) == before
    await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED


@pytest.mark.parametrize(
    "answers",
    [
        (None, 200),  # no info document: the server's id cannot be read
        ({}, 200),  # a server from before servers had ids
        ({"server_id": OTHER_ID}, 401),  # it does not answer for this household
    ],
    ids=["no_info", "no_id", "not_this_household"],
)
async def test_a_server_id_that_cannot_be_confirmed_is_not_recorded(
    hass: HomeAssistant,
    community: Community,
    connection: MockConfigEntry,
    fake_server: FakeServer,
    answers: tuple[Any, int],
) -> None:
    """The broker answers the present credentials, the server at the URL does not confirm
    itself: the details are saved, the stored server id is kept."""
    entry = await join(hass, community, connection)
    server_id = entry.data[CONF_SERVER_ID]
    hass.config_entries.async_update_entry(
        entry, data={**entry.data, CONF_SERVER_URL: fake_server.url}
    )
    fake_server.info, fake_server.status = answers
    form = await reconfigure(hass, entry)
    result = await configure(hass, form["flow_id"], server_url=fake_server.url)
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.data[CONF_SERVER_ID] == server_id
    assert await hass.config_entries.async_unload(entry.entry_id)
