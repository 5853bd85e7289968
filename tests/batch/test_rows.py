"""Verdict rows as Redis keeps them: every field back as it was, in fewer bytes."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from warming.batch.plan import Pair
from warming.batch.results import decode_chunk, decode_one, encode_chunk, encode_one, pack

PAIRS = [Pair(f"https://www.example.com/p{i // 3}", f"e{i % 3}", "default") for i in range(9)]

verdicts = st.fixed_dictionaries(
    {
        "outcome": st.sampled_from(["hit", "miss", "failed"]),
        "status": st.sampled_from([200, 203, 404, 500, None]),
        "cache": st.sampled_from(["HIT", "MISS", "STALE", None]),
        "attempts": st.integers(0, 5),
        "error": st.one_of(st.none(), st.text(max_size=20)),
    },
    optional={
        "age": st.integers(0, 10**6),
        "size": st.integers(0, 10**9),
        "etag": st.sampled_from(['"a1"', 'W/"b2"', '"a1"', "1", None]),
        "served_by": st.sampled_from(["FRA", None]),
    },
)


def _same(before: dict[str, Any], after: dict[str, Any]) -> None:
    for k, v in before.items():
        assert after.get(k) == v, (k, before, after)


@given(st.lists(st.one_of(st.none(), verdicts), min_size=9, max_size=9))
def test_a_chunk_reads_back_every_field(rows: list[dict[str, Any] | None]) -> None:
    given_ = {p: v for p, v in zip(PAIRS, rows, strict=True) if v is not None}
    back = decode_chunk(PAIRS, encode_chunk(PAIRS, given_))  # type: ignore[arg-type]
    assert set(back) == set(given_)
    for p, v in given_.items():
        _same(v, dict(back[p]))
        assert decode_one(p, encode_one(v)).get("etag") == v.get("etag")  # type: ignore[arg-type]


def test_a_hit_row_leaves_out_what_every_hit_says_and_repeated_etags() -> None:
    hit = {"outcome": "hit", "status": 200, "cache": "HIT", "attempts": 1, "error": None,
           "age": 0, "size": 105, "etag": '"7b7f1e9521a1f64d9b70"', "ttfb_ms": 5.4,
           "elapsed_ms": 6.1, "rewarmed": False}  # fmt: skip
    assert pack(hit) == ["h", None, None, 1, None, 0, 105, '"7b7f1e9521a1f64d9b70"', 5, 6]  # type: ignore[arg-type]
    text = encode_chunk(PAIRS[:3], dict.fromkeys(PAIRS[:3], hit))  # type: ignore[arg-type]
    assert text.count("7b7f1e9521a1f64d9b70") == 1 and len(text) < 3 * 45
    back = decode_chunk(PAIRS[:3], text)
    assert all(v["etag"] == hit["etag"] and v["rewarmed"] is False for v in back.values())
    assert all(v["status"] == 200 and v["cache"] == "HIT" for v in back.values())


warm_records = st.fixed_dictionaries(
    {"outcome": st.sampled_from(["warmed", "failed"]), "attempts": st.integers(1, 5)},
    optional={
        "status": st.sampled_from([200, 500, None]),
        "cache": st.sampled_from(["MISS", "HIT", None]),
        "etag": st.one_of(st.none(), st.text(max_size=12)),
        "digest": st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
        "keys": st.lists(st.text(min_size=1, max_size=8), max_size=3),
        "at": st.floats(1e9, 2e9),
        "error": st.one_of(st.none(), st.text(max_size=20)),
        "warm": st.sampled_from(["push", "get"]),
        "warm_reason": st.text(max_size=20),
    },
)


@given(warm_records)
def test_a_warm_record_reads_back_what_it_said(rec: dict[str, Any]) -> None:
    from warming.batch.results import decode_warm, encode_warm

    pair = PAIRS[4]
    full = {"url": pair.url, "pop": pair.pop, "variant": pair.variant, **rec}
    text = encode_warm(full)  # type: ignore[arg-type]
    assert pair.url not in text  # the hash field names the pair
    back = dict(decode_warm(pair, text))
    assert back == {k: v for k, v in full.items() if v is not None}
