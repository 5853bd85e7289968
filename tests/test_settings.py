"""Settings: rates, the TOML file, WARMING_* overrides, errors naming keys, secrets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from warming.errors import ConfigError
from warming.settings import Rate, Settings, load_settings

pytestmark = pytest.mark.timeout(30)

TOKEN = "tok_SUPER_SECRET_cdn_token_123"
WEBHOOK_SECRET = "whsec_VGhpcyBpcyBhIHNlY3JldCBrZXkgISE="

BASE = f"""
[site]
base_url = "https://www.example.com"

[[pops]]
name = "shield"
url = "http://198.51.100.2"
tier = "shield"

[[pops]]
name = "fra"
url = "http://203.0.113.10:8080"

[cdn]
provider = "varnish"
api_token = "{TOKEN}"

[limits]
prefetch = "50/s"
purge = "3/s"

[webhook]
secrets = ["{WEBHOOK_SECRET}"]
"""


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A TOML file named by WARMING_CONFIG, and no other WARMING_* variable."""
    for name in [k for k in os.environ if k.startswith("WARMING_")]:
        monkeypatch.delenv(name)
    path = tmp_path / "warming.toml"
    path.write_text(BASE)
    monkeypatch.setenv("WARMING_CONFIG", str(path))
    return path


def bad_key(config: Path, text: str) -> ConfigError:
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings()
    return info.value


# -- Rate -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count", "period", "per_s"),
    [
        ("100/s", 100, 1, 100.0),
        ("600/m", 600, 60, 10.0),
        ("5/10s", 5, 10, 0.5),
        ("7200/h", 7200, 3600, 2.0),
        (" 2.5 / sec ", 2.5, 1, 2.5),
        ("30/2min", 30, 120, 0.25),
    ],
)
def test_rate_parse(text: str, count: float, period: float, per_s: float) -> None:
    rate = Rate.parse(text)
    assert (rate.count, rate.period_s) == (count, period)
    assert rate.per_second == pytest.approx(per_s)
    assert Rate.parse(rate.celery()).per_second == pytest.approx(per_s)


@pytest.mark.parametrize(
    "text", ["", "100", "/s", "0/s", "-1/s", "100/d", "abc/s", "100/ s x", "1e3/s", "100/-5s"]
)
def test_rate_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a rate"):
        Rate.parse(text)


def test_rate_with_a_zero_period_is_refused() -> None:
    with pytest.raises(ValueError):
        Rate.parse("5/0s")


# -- the file and the environment -------------------------------------------------


def test_file_is_read(config: Path) -> None:
    s = load_settings()
    assert s.site.host == "www.example.com"
    assert [(p.name, p.tier) for p in s.pops] == [("shield", "shield"), ("fra", "edge")]
    assert s.limits.prefetch_rate.per_second == 50.0
    assert s.cdn.api_token is not None and s.cdn.api_token.get_secret_value() == TOKEN
    assert [x.get_secret_value() for x in s.webhook.secrets] == [WEBHOOK_SECRET]


def test_nested_env_override_beats_the_file_and_keeps_its_siblings(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARMING_LIMITS__PREFETCH", "7/s")
    monkeypatch.setenv("WARMING_FETCH__MAX_ATTEMPTS", "9")
    monkeypatch.setenv("WARMING_BROKER_URL", "redis://10.0.0.1:6379/3")
    s = load_settings()
    assert s.limits.prefetch == "7/s"
    assert s.limits.purge == "3/s", "a nested override must not wipe the file's other keys"
    assert s.fetch.max_attempts == 9
    assert s.broker_url == "redis://10.0.0.1:6379/3"
    assert s.site.base_url == "https://www.example.com"


def test_env_override_replaces_a_list(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARMING_POPS", '[{"name": "ams", "url": "http://192.0.2.7"}]')
    assert [p.name for p in load_settings().pops] == ["ams"]


def test_an_invalid_env_override_names_its_key(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARMING_LIMITS__PREFETCH", "fast")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.key == "limits.prefetch"


def test_missing_config_file_named_by_env(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARMING_CONFIG", str(config.parent / "nope.toml"))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.key == "WARMING_CONFIG"


def test_invalid_toml_names_the_file(config: Path) -> None:
    err = bad_key(config, BASE + "\n[limits\n")
    assert err.key == str(config)
    assert "not valid TOML" in str(err)
    assert TOKEN not in str(err)


# -- errors name the key ------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('url = "http://203.0.113.10:8080"', 'url = "ftp://203.0.113.10"', "pops.1.url"),
        ('url = "http://198.51.100.2"', 'url = "not a url"', "pops.0.url"),
        ('prefetch = "50/s"', 'prefetch = "lots"', "limits.prefetch"),
        ('base_url = "https://www.example.com"', 'base_url = "/relative"', "site.base_url"),
        ('provider = "varnish"', 'provider = "limelight"', "cdn.provider"),
        ('tier = "shield"', 'tier = "middle"', "pops.0.tier"),
        ("[cdn]", "[cdn]\nbogus = 1", "cdn.bogus"),
    ],
)
def test_error_names_the_bad_key(config: Path, old: str, new: str, key: str) -> None:
    assert old in BASE
    err = bad_key(config, BASE.replace(old, new, 1))
    assert err.key == key
    assert str(err).startswith(f"{key}: ")


def test_a_provider_warming_cdn_does_not_implement_is_refused_at_load(config: Path) -> None:
    err = bad_key(config, BASE.replace('provider = "varnish"', 'provider = "limelight"'))
    assert err.key == "cdn.provider"
    assert "Input should be 'varnish'" in err.message and "or 'none'" in err.message
    assert TOKEN not in str(err)


def test_unknown_top_level_key(config: Path) -> None:
    err = bad_key(config, "colour = 'blue'\n" + BASE)
    assert err.key == "colour"


def test_missing_site_is_named(config: Path) -> None:
    err = bad_key(config, BASE.replace("[site]", "[other]"))
    assert err.key in {"site", "other"}


def test_duplicate_pop_names_are_refused(config: Path) -> None:
    err = bad_key(config, BASE.replace('name = "shield"', 'name = "fra"'))
    assert err.key == "pops"
    assert "fra" in err.message


def test_variant_names_must_be_unique(config: Path) -> None:
    variants = """
[[site.variants]]
name = "gzip"
headers = { "Accept-Encoding" = "gzip" }
[[site.variants]]
name = "gzip"
headers = { "Accept-Encoding" = "br" }
"""
    text = BASE.replace("[[pops]]", variants + "\n[[pops]]", 1)
    err = bad_key(config, text)
    assert err.key == "site.variants"
    assert "distinct" in err.message
    config.write_text(
        text.replace(
            'name = "gzip"\nheaders = { "Accept-Encoding" = "br" }',
            'name = "br"\nheaders = { "Accept-Encoding" = "br" }',
        )
    )
    assert [v.name for v in load_settings().site.variants] == ["gzip", "br"]


def test_several_errors_are_all_listed(config: Path) -> None:
    text = BASE.replace('prefetch = "50/s"', 'prefetch = "x"').replace(
        'provider = "varnish"', 'provider = "y"'
    )
    err = bad_key(config, text)
    assert err.key in {"cdn.provider", "limits.prefetch"}
    assert "and 1 more" in str(err)
    assert "cdn.provider" in str(err) and "limits.prefetch" in str(err)


# -- secrets ----------------------------------------------------------------------


def test_secrets_never_print(config: Path) -> None:
    s = load_settings()
    shown = [str(s), repr(s), str(s.cdn), repr(s.webhook), str(s.redacted())]
    for text in shown:
        assert TOKEN not in text
        assert WEBHOOK_SECRET not in text
    assert s.redacted()["cdn"]["api_token"] == "**********"


def test_config_error_never_echoes_a_secret(config: Path) -> None:
    # An error elsewhere in the file, next to valid secrets, and wrongly typed secrets.
    for text in (
        BASE.replace('tier = "shield"', 'tier = "bad"'),
        BASE.replace(f'secrets = ["{WEBHOOK_SECRET}"]', f'secrets = "{WEBHOOK_SECRET}"'),
        BASE.replace(f'api_token = "{TOKEN}"', f'api_token = ["{TOKEN}"]'),
        BASE.replace("[webhook]", f'[webhook]\nsecret = "{WEBHOOK_SECRET}"'),
    ):
        err = bad_key(config, text)
        assert TOKEN not in str(err) and TOKEN not in err.message
        assert WEBHOOK_SECRET not in str(err) and WEBHOOK_SECRET not in err.message


def test_a_secret_misplaced_in_a_rate_is_not_echoed(config: Path) -> None:
    err = bad_key(config, BASE.replace('prefetch = "50/s"', f'prefetch = "{WEBHOOK_SECRET}"'))
    assert err.key == "limits.prefetch"
    assert WEBHOOK_SECRET not in str(err)


def test_settings_built_in_code_need_no_file(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARMING_CONFIG", str(config.parent / "absent.toml"))
    s = Settings.model_validate(
        {"site": {"base_url": "http://a.example/"}, "pops": [{"name": "p", "url": "http://b/"}]}
    )
    assert s.site.base_url == "http://a.example"
    assert s.pops[0].url == "http://b"


# -- webhook adapters -------------------------------------------------------------

STRAPI_TOKEN = "strapi-bearer-token-that-must-not-print-0123"


def test_each_adapter_has_its_own_secrets_else_the_shared_ones(config: Path) -> None:
    config.write_text(
        BASE
        + f'\n[webhook.adapters.strapi]\nsecrets = ["{STRAPI_TOKEN}"]\n'
        + "\n[webhook.adapters.prismic]\nsecrets = []\n"
        + "\n[webhook.adapters.ghost]\n"
    )
    hook = load_settings().webhook

    def shown(name: str) -> list[str]:
        return [s.get_secret_value() for s in hook.secrets_for(name)]

    assert shown("strapi") == [STRAPI_TOKEN]
    assert shown("generic") == shown("ghost") == [WEBHOOK_SECRET]  # no list of its own
    assert shown("prismic") == []  # an empty list of its own: refuses everything
    for text in (str(hook), repr(hook), str(load_settings().redacted())):
        assert STRAPI_TOKEN not in text


def test_an_adapters_secrets_can_come_from_the_environment(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARMING_WEBHOOK__ADAPTERS__STRAPI__SECRETS", f'["{STRAPI_TOKEN}"]')
    hook = load_settings().webhook
    assert [s.get_secret_value() for s in hook.secrets_for("strapi")] == [STRAPI_TOKEN]
    assert [s.get_secret_value() for s in hook.secrets] == [WEBHOOK_SECRET]


def test_an_unknown_adapter_name_is_refused_at_load_naming_it(config: Path) -> None:
    err = bad_key(config, BASE + f'\n[webhook.adapters.strapy]\nsecrets = ["{STRAPI_TOKEN}"]\n')
    assert err.key == "webhook.adapters"
    assert "unknown adapter 'strapy'" in err.message and "strapi" in err.message
    assert STRAPI_TOKEN not in str(err)


def test_the_adapter_names_settings_know_are_the_adapters_there_are() -> None:
    from warming.cms import ADAPTERS
    from warming.settings import WEBHOOK_ADAPTERS

    assert sorted(WEBHOOK_ADAPTERS) == sorted(ADAPTERS)
