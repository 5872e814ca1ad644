"""The text of a field predicate (``rewind request --where``, ``rewind plan --where``, a drill's
selector): every malformed one is refused naming the column where it goes wrong, never read as
something else; every predicate written out reads back as itself."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processor.rollback.request import FieldPredicate, PredicateOp, RequestInvalid


@pytest.mark.parametrize(
    ("text", "column", "says"),
    [
        ("rule_version ==", 16, "a value is needed after '=='"),
        ("rule_version ==   ", 19, "a value is needed after '=='"),
        ("rule_version", 13, "a comparison is needed"),
        ("== 3", 1, "a field path"),
        ("  == 3", 3, "a field path"),
        ("", 1, "a field path"),
        ("a.b. == 1", 4, "a comparison is needed"),
        ("a =! 1", 3, "a comparison is needed"),
        ("amount > 10x", 12, "not JSON"),
        ("a == [1, 2", 11, "not JSON"),
        ('a == "unterminated', 6, "not JSON"),
        ("x == v7 v8", 6, "not JSON"),
        ("status in", 10, "a value is needed after 'in'"),
        ("statusin [1]", 10, "a comparison is needed"),
        ("status in 3", None, "'in' needs a JSON list"),
    ],
)
def test_a_malformed_predicate_is_refused_at_its_column(text: str, column: int | None, says: str) -> None:
    with pytest.raises(RequestInvalid, match=says) as refused:
        FieldPredicate.parse(text)
    if column is not None:
        message = str(refused.value)
        assert f"at column {column}:" in message
        caret = message.splitlines()[-1]
        assert caret.index("^") - 2 == column - 1  # the caret sits under that column of the echoed text


@pytest.mark.parametrize(
    ("text", "field", "op", "value"),
    [
        ('rule_version == "v7"', "rule_version", PredicateOp.EQ, "v7"),
        ("model == v7", "model", PredicateOp.EQ, "v7"),  # a bare word is text
        ("region != eu-west-1", "region", PredicateOp.NE, "eu-west-1"),
        ('a == "x<y"', "a", PredicateOp.EQ, "x<y"),  # an operator inside the value stays in the value
        ('name in ["a==b", "c"]', "name", PredicateOp.IN, ["a==b", "c"]),
        ('status in["a"]', "status", PredicateOp.IN, ["a"]),
        ("margin > 5", "margin", PredicateOp.GT, 5),  # 'in' inside a name is not the operator
        ("after.price <= 84.50", "after.price", PredicateOp.LE, Decimal("84.50")),
        ("  bad==true  ", "bad", PredicateOp.EQ, True),
        ("decision.model_id == null", "decision.model_id", PredicateOp.EQ, None),
    ],
)
def test_a_wellformed_predicate_reads_as_written(text: str, field: str, op: PredicateOp, value: Any) -> None:
    p = FieldPredicate.parse(text)
    assert (p.field, p.op, p.value) == (field, op, value)


_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(lambda n: n != "in")
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=12),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
)  # fmt: skip


@given(
    path=st.lists(_names, min_size=1, max_size=3).map(".".join),
    op=st.sampled_from(list(PredicateOp)),
    value=_scalars,
    listed=st.lists(_scalars, max_size=3),
)
def test_every_predicate_written_out_reads_back_as_itself(
    path: str, op: PredicateOp, value: Any, listed: list[Any]
) -> None:
    written = FieldPredicate(path, op, listed if op is PredicateOp.IN else value)
    again = FieldPredicate.parse(str(written))
    assert (again.field, again.op, again.value) == (written.field, written.op, written.value)


def test_a_selector_with_an_undecodable_byte_is_refused_at_its_column() -> None:
    """Found by fuzzing (bench/fuzz): Python reads an undecodable command-line byte as a lone surrogate,
    which read as a bare word and crashed when the predicate was written out."""
    text = b"a == x\xff".decode("utf-8", errors="surrogateescape")
    with pytest.raises(RequestInvalid, match="not UTF-8 text, at column 7"):
        FieldPredicate.parse(text)
