"""README "Finding each PoP": each example, as written, is a valid configuration whose
PoPs ask the questions the text says (names, resolvers, subnets); nothing is sent."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from tests.support import ROOT
from warming.pop.discover import Discoverer
from warming.settings import Settings


def examples() -> list[dict[str, Any]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Finding each PoP", 1)[1].split("\n## ", 1)[0]
    return [tomllib.loads(b) for b in re.findall(r"```toml\n(.*?)```", section, re.S)]


def _questions(cfg: dict[str, Any]) -> dict[str, tuple[str, str, str | None]]:
    settings = Settings(site={"base_url": "https://www.example.com"}, **cfg)  # type: ignore[arg-type]
    finder = Discoverer(settings.site, settings.discover)
    return {p.name: finder.question(p) for p in settings.pops}


def test_the_client_subnet_example_asks_google_dns_as_users_in_each_region() -> None:
    geo, _ = examples()
    assert _questions(geo) == {
        "fra": ("www.example.com", "8.8.8.8", "85.214.132.0/24"),
        "nyc": ("www.example.com", "8.8.8.8", "98.113.0.0/16"),
        "tokyo": ("www.example.com", "203.0.113.53", None),
    }


def test_the_cloudfront_example_asks_for_each_pops_own_name(monkeypatch: Any) -> None:
    _, cf = examples()
    # No `resolvers` in the example: the machine's own resolver is asked.
    monkeypatch.setattr("warming.pop.discover.system_resolver", lambda: "192.0.2.53")
    assert _questions(cf) == {
        "fra": ("d111111abcdef8.FRA56-P1.cloudfront.net", "192.0.2.53", None),
        "iad": ("d111111abcdef8.IAD89-C2.cloudfront.net", "192.0.2.53", None),
    }
