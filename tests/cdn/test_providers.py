"""`cdn.provider`: one that warming/cdn/ does not know stops every command at start."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
import redis

from tests.support import ROOT, env_for, run_cli, write_config
from warming import cdn, defaults
from warming import keys as K
from warming.batch.plan import planned_cdn
from warming.broker import tasknames as T
from warming.cdnsettings import CdnSettings, ProviderName

pytestmark = pytest.mark.integration

POPS = [{"name": "edge1", "url": "http://127.0.0.1:9"}]


def test_the_registry_and_the_settings_name_the_same_providers() -> None:
    assert set(cdn.PROVIDERS) == set(defaults.CDN_PROVIDERS)
    assert set(get_args(ProviderName)) == set(cdn.PROVIDERS)


def test_no_secret_of_any_provider_is_kept_in_a_plan() -> None:
    secrets = {
        n: f"secret-{n}"
        for n, f in CdnSettings.model_fields.items()
        if "SecretStr" in repr(f.annotation)
    }
    planned = planned_cdn(CdnSettings(provider="akamai", api_url="https://akab.example", **secrets))
    assert set(secrets) >= {
        "api_token",
        "client_secret",
        "revalidate_secret",
        "aws_secret_access_key",
    }
    assert not any(v in json.dumps(planned) for v in secrets.values())
    assert planned == {"provider": "akamai", "api_url": "https://akab.example"}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("provider", ["limelight"])
def test_an_unknown_provider_stops_cli_shim_and_worker_with_exit_2(
    tmp_path: Path, redis_url: str, provider: str
) -> None:
    config = write_config(tmp_path / "warming.toml", redis_url, POPS, cdn={"provider": provider})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    runs = {
        "warm": run_cli(config, "warm", "/x", "--wait", timeout=60),
        "report": run_cli(config, "report", "some-id", timeout=60),
        "serve": run_cli(config, "serve", "--port", port, timeout=60),
    }
    for name, res in runs.items():
        assert res.returncode == 2, (name, res.returncode, res.stderr)
        line = res.stderr.strip()
        assert line.startswith("warming: invalid configuration: cdn.provider: "), (name, line)
        assert "Input should be 'varnish'" in line and "'nextjs', 'nginx' or 'none'" in line
        assert "Traceback" not in res.stderr
    worker = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "warming", "worker", "-P", "threads"],
        env=env_for(config),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker.returncode == 2, worker.stderr[-2000:]
    assert "warming: invalid configuration: cdn.provider: " in worker.stderr
    r = redis.Redis.from_url(redis_url)
    assert r.zcard(K.RECENT) == 0, "no batch was recorded"
    assert r.llen(T.Q_PURGE) == 0, "no purge was queued"
