"""`netbewust-server settlement close`, in-process on a real SQLite file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from community_server.cli import main
from community_server.store import Store
from netbewust_core.protocol.messages import Message, Telemetry

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

JANUARY = datetime(2020, 1, 15, 12, 0, tzinfo=UTC)  # long ended, whatever the date today


def test_an_operator_closes_an_ended_month_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "server.toml"
    config.write_text(f'[database]\npath = "{tmp_path / "cli.db"}"\n')
    store = Store.open(tmp_path / "cli.db")
    store.create_community("wijk-1", "Wijk", JANUARY)
    code = store.issue_join_code("wijk-1", JANUARY, timedelta(days=1)).code
    store.redeem_join_code(code, JANUARY, "huis-1")
    report = Telemetry(measured_at=JANUARY, interval_s=900, power_w=(2000.0,), participating=True)
    message = Message(community="wijk-1", household="huis-1", sent_at=JANUARY, body=report)
    assert store.save_received([message], JANUARY) == []
    store.close()

    def run(*argv: str) -> int:
        return main(["--config", str(config), "settlement", "close", *argv], environ={})

    assert run("wijk-1", "2020-01", "--json") == 0
    (line,) = capsys.readouterr().out.splitlines()
    document = json.loads(line)
    assert document["for_period"] == "2020-01"
    assert [h["import_kwh"] for h in document["households"]] == [0.5]
    assert run("wijk-1", "2020-01") == 1
    assert "not after the last closed period" in capsys.readouterr().err
    assert run("wijk-1", "2099-01") == 1
    assert "has not ended" in capsys.readouterr().err
    assert run("wijk-1", "2020-1") == 2
    assert "YYYY-MM" in capsys.readouterr().err
    assert run("elders", "2020-02") == 1
    assert "no community" in capsys.readouterr().err
    assert run("wijk-1", "2020-02") == 0
    assert capsys.readouterr().out.startswith("statement for 2020-02: 0 households")
