"""A grid operator's system posting a capacity frame to the server's HTTP DSO API, as the
end-to-end tests do."""

from __future__ import annotations

from datetime import datetime, timedelta

import aiohttp


async def post_hour_frame(
    port: int,
    token: str,
    *,
    transformer: str,
    start: datetime,
    request_id: str,
    mode: str | None = None,
    **cap_kw: float,
) -> None:
    """A one-hour frame from `start` (`import_kw` and/or `export_kw`); it must be accepted."""
    frame: dict[str, object] = {
        "request_id": request_id,
        "transformer": transformer,
        "intervals": [
            {
                "start": start.isoformat(),
                "end": (start + timedelta(hours=1)).isoformat(),
                **cap_kw,
            }
        ],
    }
    if mode is not None:
        frame["mode"] = mode
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"http://127.0.0.1:{port}/api/v1/dso/frames",
            json=frame,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status == 201, await response.text()
