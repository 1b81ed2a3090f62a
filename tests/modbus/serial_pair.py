"""A virtual RS-485 line: socat joins two pseudo-terminals, one end per side.

A serial simulator opens the device end and our transport the host end, so RTU frames
travel through real serial ports (pyserial on both sides), without hardware.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

_LINK_WAIT_S = 5.0


@dataclass(frozen=True, slots=True)
class SerialPair:
    device_end: str  # the simulated device listens here
    host_end: str  # Netbewust opens this one


@asynccontextmanager
async def virtual_serial_pair(directory: Path) -> AsyncIterator[SerialPair]:
    """Start socat, wait until both links exist, stop socat afterwards."""
    socat = shutil.which("socat")
    if socat is None:
        pytest.fail("socat is needed for the serial tests (apt-get install socat)")
    device_end, host_end = directory / "device", directory / "host"
    process = await asyncio.create_subprocess_exec(
        socat,
        "-d",
        "-d",
        f"pty,raw,echo=0,link={device_end}",
        f"pty,raw,echo=0,link={host_end}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await _wait_for_links(process, device_end, host_end)
        yield SerialPair(str(device_end), str(host_end))
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            async with asyncio.timeout(_LINK_WAIT_S):
                await process.communicate()  # also drains socat's log so it never blocks
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


async def _wait_for_links(process: asyncio.subprocess.Process, *links: Path) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _LINK_WAIT_S
    while not all(link.exists() for link in links):
        if process.returncode is not None:
            log = await process.stderr.read() if process.stderr else b""
            pytest.fail(f"socat exited with {process.returncode}: {log.decode()}")
        if loop.time() > deadline:
            pytest.fail(f"socat did not create {', '.join(map(str, links))}")
        await asyncio.sleep(0.02)
