"""Keys of a community membership entry: one config entry per joined community."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

# Entry data marks a membership; a connection entry never has this key.
CONF_ENTRY_KIND: Final = "entry_kind"
ENTRY_KIND_COMMUNITY: Final = "community_membership"

CONF_SERVER_URL: Final = "server_url"  # the HTTP API base, e.g. "https://coop.example:8480"
# The server's identity (32 hex digits) from its info document when joining; None for a
# membership joined before servers had one (re-joining or reconfiguring records it).
CONF_SERVER_ID: Final = "server_id"
CONF_JOIN_CODE: Final = "join_code"
CONF_CONNECTION_ENTRY: Final = "connection_entry_id"  # the guarded connection it steers
CONF_COMMUNITY: Final = "community"
CONF_HOUSEHOLD: Final = "household"
CONF_MQTT_HOST: Final = "mqtt_host"
CONF_MQTT_PORT: Final = "mqtt_port"
CONF_MQTT_TLS: Final = "mqtt_tls"
CONF_MQTT_CLIENT_ID: Final = "mqtt_client_id"
CONF_MQTT_USERNAME: Final = "mqtt_username"
CONF_MQTT_PASSWORD: Final = "mqtt_password"
# Optional, entered by the household: the cooperative's own CA (PEM), connection EAN, tariff.
CONF_CA_CERT: Final = "ca_cert"
CONF_EAN: Final = "ean"
CONF_TARIFF_CLASS: Final = "tariff_class"

# What zeroconf's TXT record and the join answer promise.
SERVICE_TYPE: Final = "_netbewust._tcp.local."
# The TXT property naming the server's identity, as in its info document.
TXT_SERVER_ID: Final = "server_id"


def is_community_entry(data: Mapping[str, Any]) -> bool:
    return data.get(CONF_ENTRY_KIND) == ENTRY_KIND_COMMUNITY
