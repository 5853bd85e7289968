"""`[[schedules]]` in the config: what is refused at load, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from warming.errors import ConfigError
from warming.settings import load_settings

BASE = (
    '[site]\nbase_url = "https://www.example.com"\n[[pops]]\nname = "e"\nurl = "http://10.0.0.1"\n'
)


def _load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, schedules: str) -> object:
    path = tmp_path / "warming.toml"
    path.write_text(BASE + schedules)
    monkeypatch.setenv("WARMING_CONFIG", str(path))
    return load_settings()


@pytest.mark.parametrize(
    ("entry", "key", "why"),
    [
        ('name = "a"\ncron = "0 3 * *"\nurls = ["/"]', "schedules.0.cron", "five cron fields"),
        ('name = "a"\ncron = "0 25 * * *"\nurls = ["/"]', "schedules.0.cron", "not a valid cron"),
        ('name = "a"\nevery = "5s"\nurls = ["/"]', "schedules.0.every", "at least 10 s"),
        ('name = "a"\nevery = "often"\nurls = ["/"]', "schedules.0.every", "interval like"),
        ('name = "a"\nurls = ["/"]', "schedules.0", "exactly one of cron or every"),
        (
            'name = "a"\nevery = "1h"\ncron = "* * * * *"\nurls = ["/"]',
            "schedules.0",
            "exactly one",
        ),
        ('name = "a"\nevery = "1h"', "schedules.0", "something to warm"),
        ('name = "a"\nevery = "1h"\nurls = ["/"]\npriority = "urgent"', "schedules.0.priority", ""),
        ('name = "a"\nevery = "1h"\nsitemap = "/s.xml"\nchanged = true', "schedules.0.changed", ""),
    ],
)
def test_a_bad_schedule_is_refused_naming_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: str, key: str, why: str
) -> None:
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, monkeypatch, f"[[schedules]]\n{entry}\n")
    assert e.value.key == key and why in e.value.message, (e.value.key, e.value.message)


def test_schedule_names_are_unique_and_defaults_are_a_bulk_run_without_purge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = '[[schedules]]\nname = "a"\nevery = "1h"\nsitemap = "/s.xml"\n'
    with pytest.raises(ConfigError, match="repeated: a"):
        _load(tmp_path, monkeypatch, one + one)
    s = _load(tmp_path, monkeypatch, one).schedules[0]  # type: ignore[attr-defined]
    assert (s.priority, s.purge, s.changed_only, s.every_s) == ("bulk", False, True, 3600.0)
