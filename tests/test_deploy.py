"""The deploy files, checked as far as a machine without a container engine can."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from warming.cli.main import _parser

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
ROOT = DEPLOY.parent


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_has_every_role_with_a_real_command() -> None:
    services = _compose()["services"]
    assert {"redis", "shim", "worker", "flower"} <= set(services)
    shim = services["shim"]["command"]
    assert shim[:2] == ["warming", "serve"]
    _parser().parse_args(shim[1:])  # the CLI accepts exactly these arguments
    worker = services["worker"]["command"]
    assert worker[:4] == ["celery", "-A", "warming", "worker"] and "-E" in worker
    # Flower's credentials come from its environment, never argv (`ps` shows argv).
    flower = services["flower"]
    assert "basic-auth" not in " ".join(flower["command"]).lower()
    assert "FLOWER_BASIC_AUTH" in flower["environment"]
    redis_cmd = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_cmd and "noeviction" in redis_cmd
    assert services["worker"]["stop_grace_period"] == "60s"


def test_dockerfile_copies_files_that_exist() -> None:
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY") and "--from" not in line:
            sources = line.split()[1:-1]
            for src in sources:
                assert (ROOT / src).exists(), src


def test_systemd_units_verify(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    bindir = str(Path(sys.executable).parent)
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        text = unit.read_text().replace("/opt/warming/.venv/bin", bindir)
        text = re.sub(r"^(User|Group)=.*$", r"\1=root", text, flags=re.M)
        text = re.sub(r"^EnvironmentFile=.*$", "", text, flags=re.M)
        assert "ExecStart=" in text
        if "flower" in unit.name:
            start = next(x for x in text.splitlines() if x.startswith("ExecStart="))
            assert "basic-auth" not in start and "EnvironmentFile=/etc/warming/flower.env" in (
                unit.read_text()
            )
        tmp = tmp_path / unit.name
        tmp.write_text(text)
        res = subprocess.run([tool, "verify", str(tmp)], capture_output=True, text=True)
        assert res.returncode == 0, (unit.name, res.stderr)
