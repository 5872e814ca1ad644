"""Typed fields out of decoded Debezium JSON, read the same way by every parser (and by native/).

Each reader says what it accepts; a value out of range is absent (None), never wrapped or rounded.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache
from typing import Any

from processor.jsonvalue import text_of

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_INT_TEXT = re.compile(r"[ \t\n\r]*([+-]?)0*([0-9]+)[ \t\n\r]*", re.ASCII)
# PostgreSQL's forms: '571', and '571:53195832' (xid:lsn) in transaction metadata. Ids with a leading
# zero or other characters (GTIDs, Oracle's hex XIDs) are other databases' and stay as they are.
_PG_TX_ID = re.compile(r"(0|[1-9][0-9]*)(:[0-9]+)?", re.ASCII)


def int_value(value: Any) -> int | None:
    """An integer as JSON wrote it (``isinstance(v, int)``, true/false included), within 64 bits."""
    if isinstance(value, int) and INT64_MIN <= value <= INT64_MAX:
        return int(value)
    return None


def int_or_none(value: Any) -> int | None:
    """``int(value)`` of a number (toward zero), a boolean or a text of ASCII digits; None when it is
    none of these or does not fit 64 bits."""
    if isinstance(value, bool | int):
        n = int(value)
    elif isinstance(value, Decimal):
        if value.is_zero() or value.adjusted() < 0:
            return 0
        if value.adjusted() >= 19:
            return None
        n = int(value)
    elif isinstance(value, str) and (match := _INT_TEXT.fullmatch(value)):
        digits = match.group(2)
        if len(digits) > 19:
            return None
        n = int(match.group(1) + digits)
    else:
        return None
    return n if INT64_MIN <= n <= INT64_MAX else None


def str_or_none(value: Any) -> str | None:
    return None if value is None else text_of(value)


def is_tx_id(value: Any) -> bool:
    """Transaction ids are texts or integers; anything else is not one."""
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


@lru_cache(maxsize=65_536)  # each id comes back with every record of its transaction
def normalize_tx_id(raw: str | int) -> str:
    """One text for a transaction across Debezium's forms: '571:53195832' and 571 are both '571'.

    PostgreSQL's 64-bit ids (txid_current(), written by services into outbox rows) carry an epoch in
    the high bits; Debezium reports the 32-bit xid, so both are reduced to it. Other databases' ids
    (a MySQL GTID 'uuid:seq', a MariaDB GTID '0-1-42') are kept whole.
    """
    text = str(raw).strip()
    match = _PG_TX_ID.fullmatch(text)
    if match is None:
        return text
    # x mod 2^32 depends only on x mod 10^32 (2^32 divides 10^32): the last 32 digits decide it.
    return str(int(match.group(1)[-32:]) % 2**32)
