"""zeroconf: the server advertises its HTTP API as `_netbewust._tcp.local.`.

Home Assistant discovers it there and offers to join. The TXT record carries the API
path, the protocol version, whether the API uses TLS, and the server's identity
(`server_id`, kept in its database): a household recognises its own server by that id
when the server turns up at another address.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import TYPE_CHECKING

import ifaddr
from zeroconf import InterfaceChoice, IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from netbewust_core.protocol.messages import PROTOCOL_VERSION

from .http_api import API_PREFIX

if TYPE_CHECKING:
    from .config import ServerConfig

_LOGGER = logging.getLogger(__name__)
SERVICE_TYPE = "_netbewust._tcp.local."


def advertised_addresses(http_host: str) -> list[str]:
    """The IPv4 addresses households can reach the API on, given where it listens."""
    if http_host in ("", "0.0.0.0"):
        return sorted(
            {
                str(address.ip)
                for adapter in ifaddr.get_adapters()
                for address in adapter.ips
                if isinstance(address.ip, str) and not ipaddress.ip_address(address.ip).is_loopback
            }
        )
    try:
        return [str(ipaddress.IPv4Address(http_host))]
    except ValueError:
        return [socket.gethostbyname(http_host)]


def service_info(config: ServerConfig, addresses: list[str], server_id: str) -> AsyncServiceInfo:
    name = config.zeroconf.name
    return AsyncServiceInfo(
        SERVICE_TYPE,
        f"{name}.{SERVICE_TYPE}",
        addresses=[socket.inet_aton(address) for address in addresses],
        port=config.http.port,
        properties={
            "path": API_PREFIX,
            "protocol": str(PROTOCOL_VERSION),
            "tls": "1" if config.http.tls_cert_file else "0",
            "server_id": server_id,
        },
        server=f"{socket.gethostname().split('.')[0]}.local.",
    )


class Advertiser:
    """Registers the service while the server runs."""

    def __init__(self, config: ServerConfig, server_id: str) -> None:
        self._config = config
        self._server_id = server_id
        self._zeroconf: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None

    async def start(self) -> None:
        addresses = advertised_addresses(self._config.http.host)
        if not addresses:
            _LOGGER.warning("no address to advertise the HTTP API on; zeroconf is off")
            return
        loopback_only = all(ipaddress.ip_address(a).is_loopback for a in addresses)
        self._zeroconf = AsyncZeroconf(
            interfaces=addresses if loopback_only else InterfaceChoice.All,
            ip_version=IPVersion.V4Only,
        )
        self._info = service_info(self._config, addresses, self._server_id)
        # The first await registers; the second waits for the announcements to go out.
        await (await self._zeroconf.async_register_service(self._info))
        _LOGGER.info("advertised %s on %s", self._info.name, ", ".join(addresses))

    async def stop(self) -> None:
        if self._zeroconf is None:
            return
        if self._info is not None:
            await (await self._zeroconf.async_unregister_service(self._info))
        await self._zeroconf.async_close()
        self._zeroconf = None
