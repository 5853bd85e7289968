"""Celery settings that follow warming's own (pure: no broker)."""

from __future__ import annotations

from warming.broker.config import from_settings
from warming.settings import Settings


def _settings(**limits: object) -> Settings:
    return Settings.model_validate(
        {
            "broker_url": "redis://127.0.0.1:6379/0",
            "site": {"base_url": "http://www.example.com"},
            "pops": [{"name": "e", "url": "http://127.0.0.1:9"}],
            "limits": limits,
            "batch": {"chunk_size": 25},
        }
    )


def test_the_per_worker_cap_is_per_pair_though_a_task_warms_a_chunk() -> None:
    conf = from_settings(_settings(per_worker_prefetch="50/s"))
    # 50 pairs/s in tasks of 25 pairs: 2 tasks/s.
    assert conf["task_annotations"] == {"warming.prefetch": {"rate_limit": "2/s"}}


def test_no_per_worker_cap_by_default() -> None:
    assert from_settings(_settings())["task_annotations"] == {}
