"""`netbewust-server demo`: one command starts a neighbourhood, and Ctrl+C stops it cleanly."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.request
from typing import TYPE_CHECKING, Any

from community_server.cli import main

from .conftest import free_port

if TYPE_CHECKING:
    from pathlib import Path


def _dashboard(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/dashboard", timeout=5) as answer:
        document: dict[str, Any] = json.load(answer)
        return document


async def test_the_demo_starts_reports_and_stops_on_ctrl_c(
    tmp_path: Path, socket_enabled: None
) -> None:
    port = free_port()
    command = [sys.executable, "-m", "community_server", "demo", "--households", "5"]
    command += ["--http-port", str(port), "--speed", "60", "--data-dir", str(tmp_path)]
    demo = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert demo.stdout is not None
        announced = ""
        while "Dashboard:" not in announced:
            line = await asyncio.wait_for(demo.stdout.readline(), timeout=30)
            assert line, "the demo exited before announcing the dashboard"
            announced += line.decode()
        assert f"http://127.0.0.1:{port}/dashboard/" in announced
        deadline = time.monotonic() + 40
        transformer: dict[str, Any] = {}
        while time.monotonic() < deadline:
            transformer = (await asyncio.to_thread(_dashboard, port))["transformers"][0]
            if transformer["reporting"] == 5 and transformer["online"] == 5:
                break
            await asyncio.sleep(0.5)
        assert transformer["members"] == 5
        assert transformer["reporting"] == 5  # every household's telemetry arrived
        assert transformer["cap_w"] == 10_000.0
        assert (tmp_path / "demo.db").exists()
        demo.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(demo.wait(), timeout=20) == 0
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()


def test_bad_demo_options_are_refused(capsys: Any) -> None:
    assert main(["demo", "--households", "0"]) == 2
    assert "households must be" in capsys.readouterr().err
    assert main(["demo", "--profile-start", "25:00"]) == 2
    assert main(["demo", "--speed", "-1"]) == 2
