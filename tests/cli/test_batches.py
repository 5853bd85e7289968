"""`warming batches`: the recent batches from a real Redis, as text and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import run_cli, write_config
from warming.batch.publish import WarmRequest, publish
from warming.runtime import use
from warming.settings import load_settings

pytestmark = pytest.mark.integration


def test_lists_and_filters_recent_batches(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(
        tmp_path / "warming.toml", redis_url, [{"name": "fra", "url": "http://127.0.0.1:9"}]
    )
    monkeypatch.setenv("WARMING_CONFIG", str(config))
    rt = use(load_settings())
    first = publish(rt, WarmRequest(paths=["/a"])).batch_id
    rt.store.finish(first, "done")
    second = publish(rt, WarmRequest(paths=["/b"])).batch_id

    res = run_cli(config, "batches", "--json")
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)["batches"]
    assert [b["batch_id"] for b in got] == [second, first]
    assert [b["state"] for b in got] == ["queued", "done"]

    done = json.loads(run_cli(config, "batches", "--state", "done", "--json").stdout)["batches"]
    assert [b["batch_id"] for b in done] == [first]

    text = run_cli(config, "batches", "--limit", "1").stdout.splitlines()
    assert len(text) == 1 and text[0].startswith(second) and "running" in text[0]
    assert run_cli(config, "batches", "--state", "bogus").returncode == 2
    assert run_cli(config, "batches", "--limit", "0").returncode == 2
