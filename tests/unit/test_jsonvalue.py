"""Exact JSON: numbers keep their digits, one canonical text per value, the same rules in both engines."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.jsonvalue import MAX_DEPTH, JsonInvalid, canonical_json, dumps, loads
from processor.tap import native

needs_native = pytest.mark.skipif(not native.available(), reason="the native engine is not built")


def test_numbers_keep_every_digit() -> None:
    # decimal.format=NUMERIC writes a NUMERIC(20,2) as a JSON number; floats would round it.
    value = loads(b'{"price": 123456789012345678.91, "id": 12345678901234567890123456789012345678}')
    assert value["price"] == Decimal("123456789012345678.91")
    assert value["id"] == 12345678901234567890123456789012345678
    assert (
        canonical_json(value) == '{"id":12345678901234567890123456789012345678,"price":123456789012345678.91}'
    )
    assert loads(b"12345678901234567890123456789012345678") != loads(
        b"12345678901234567890123456789012345679"
    )


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("1.50", "1.50"), ("1e17", "1E+17"), ("-0", "0"), ("-0.0", "-0.0"), ("0.0000001", "1E-7"),
     ("12e-8", "1.2E-7"), ("100E-2", "1.00"), ("0E5", "0E+5"), ("0.000", "0.000")],
)  # fmt: skip
def test_canonical_number_text_is_pythons_decimal_text(text: str, canonical: str) -> None:
    assert canonical_json(loads(text)) == canonical


@pytest.mark.parametrize(
    ("data", "why"),
    [(b"NaN", "NaN"), (b"[1,]", "Expecting"), (b"\xff", "not UTF-8"), (b'"\\ud800"', "surrogate"),
     (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "deeper"), (b"1e1000000000000000", "exponent"),
     (b"1e99999999999999999999", "exponent"), (b'{"a":1} x', "Extra data")],
)  # fmt: skip
def test_what_is_not_json_says_why(data: bytes, why: str) -> None:
    with pytest.raises(JsonInvalid, match=why):
        loads(data)


@pytest.mark.parametrize(
    "dropped",
    ["[" * 300 + "]" * 300, "1e1000000000000000", '"\\ud800"'],
    ids=["deep", "exponent", "surrogate"],
)
def test_a_repeated_keys_dropped_value_still_counts(dropped: str) -> None:
    """The rules are the text's: a value the parser later drops for a repeated key is still read."""
    with pytest.raises(JsonInvalid):
        loads('{"a": ' + dropped + ', "a": 1}')


def test_the_deepest_nesting_allowed_reads_and_writes() -> None:
    text = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert canonical_json(loads(text)) == text


def test_integers_past_pythons_4300_digits_stay_exact() -> None:
    digits = "9" * 5000
    assert canonical_json(loads(f"[{digits}, 1]")) == f"[{digits},1]"


def test_dumps_writes_big_integers_and_deep_values_orjson_refuses() -> None:
    assert dumps({"a": 2**80, "b": [Decimal("1.5")]}) == '{"a":1208925819614629174706176,"b":[1.5]}'
    deep: object = []
    for _ in range(300):
        deep = [deep]
    assert dumps(deep) == "[" * 301 + "]" * 301


# -- the two engines ------------------------------------------------------------------------------

number_literals = st.builds(
    lambda sign, whole, frac, exp: f"{sign}{whole}{frac}{exp}",
    st.sampled_from(["", "-"]),
    st.sampled_from(["0", "1", "7", "10", "100", "123456789012345678901234567890"]),
    st.sampled_from(["", ".0", ".5", ".50", ".000001", ".91", ".0000000001"]),
    st.sampled_from(["", "e0", "e5", "E+2", "e-7", "E-30", "e17", "e+0005", "e999999999999999", "e1000000000000000"]),
)  # fmt: skip
scalars = st.one_of(
    number_literals,
    st.text(max_size=8).map(json.dumps),
    st.text(max_size=8).map(lambda s: json.dumps(s, ensure_ascii=False)),
    st.sampled_from(["true", "false", "null", '"\\ud83d\\ude00"', '"\\ud800"', '"\\udc00x"', '"\\u0000"']),
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3).map(lambda xs: "[" + ",".join(xs) + "]")
        | st.lists(st.tuples(st.text(max_size=3).map(json.dumps), inner), max_size=3).map(
            lambda kv: "{" + ",".join(f"{k}:{v}" for k, v in kv) + "}"
        )
    ),
    max_leaves=10,
)
mangled = st.one_of(
    documents,
    documents.map(lambda d: d + ","),
    documents.map(lambda d: " \n" + d + "\t"),
    documents.map(lambda d: d.replace("1", "NaN", 1)),
    st.integers(MAX_DEPTH - 2, MAX_DEPTH + 2).map(lambda n: "[" * n + "]" * n),
    st.integers(MAX_DEPTH - 2, MAX_DEPTH + 2).map(lambda n: '{"a":' * n + "1" + "}" * n),
    documents.map(lambda d: '{"a":' + d + ',"a":1}'),  # a repeated key drops the first value
)


def _python(data: bytes) -> str | None:
    try:
        return canonical_json(loads(data))
    except JsonInvalid:
        return None


@needs_native
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=mangled, raw=st.binary(max_size=12))
def test_both_engines_read_and_write_json_alike(text: str, raw: bytes) -> None:
    import rewind_native

    for data in (text.encode("utf-8", "surrogatepass"), raw, text.encode("utf-8", "surrogatepass") + raw):
        assert rewind_native.canonical_json(data) == _python(data), data
