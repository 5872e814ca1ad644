"""JSON text <-> values, exactly: every number keeps its digits, and each value has one canonical text.

The tap reads Debezium's JSON here and the journal writes its JSON text fields here, so a NUMERIC(38,0)
key or a ``decimal.format=NUMERIC`` price survives end to end (a float parser would round both). The
native engine (``native/src/json.rs``) implements the same rules and the tests hold the two to each
other; a rule changed here must be changed there.

Reading (strict RFC 8259, both engines):
- UTF-8 only; no NaN/Infinity, no comments; a ``\\u`` escape may not leave a lone surrogate;
- at most ``MAX_DEPTH`` nested arrays and objects;
- an integer becomes an ``int`` (a ``Decimal`` past 4,300 digits, where ``int`` refuses); any other
  number a ``Decimal``, digits and exponent as written, its exponent within ``MAX_EXPONENT``;
- a repeated object key keeps its first place and its last value.

Canonical text: keys sorted, no spaces, strings escaped as orjson does, numbers as ``str(int)`` and
``str(Decimal)`` (``1.50``, ``1E+17``).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from decimal import Decimal
from itertools import accumulate
from typing import Any

import orjson

MAX_DEPTH = 256
MAX_EXPONENT = 10**15  # |exponent| of a number's coefficient x 10^exponent must stay below this
_INT_DIGITS = 4300  # Python's int <-> str limit


class JsonInvalid(ValueError):
    """The text is not JSON by the rules above; the message says why, ``pos`` where (when known)."""

    def __init__(self, message: str, pos: int | None = None) -> None:
        super().__init__(message)
        self.pos = pos


def _refuse_constant(name: str) -> Any:
    raise JsonInvalid(f"{name} is not JSON")


def _exact_int(text: str) -> int | Decimal:
    return int(text) if len(text.lstrip("-")) <= _INT_DIGITS else Decimal(text)


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_refuse_constant)
_BIG_INT_DECODER = json.JSONDecoder(
    parse_float=Decimal, parse_int=_exact_int, parse_constant=_refuse_constant
)
_BIG_EXPONENT = re.compile(r"[eE][+-]?0*\d{15}")


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """The value of a JSON text, exactly; raises JsonInvalid saying what is wrong."""
    text = _text(data)
    try:
        value = _decode(text)
    except json.JSONDecodeError as exc:
        raise JsonInvalid(f"{exc.msg} at line {exc.lineno} column {exc.colno}", exc.pos) from None
    except RecursionError:
        raise JsonInvalid(f"nested deeper than {MAX_DEPTH} levels") from None
    except ArithmeticError:  # Decimal refuses an exponent past 10^18: past the limit here too
        raise JsonInvalid(f"a number's exponent is {MAX_EXPONENT} or more") from None
    _check(text, value)
    return value


def loads_own(text: str) -> Any:
    """The value of a JSON text rewind wrote itself (``canonical_json``), exactly: the checks for
    hostile input are skipped, as they passed when the value was first read."""
    return _decode(text)


def _decode(text: str) -> Any:
    try:
        return _DECODER.decode(text)
    except ValueError as exc:  # an integer past Python's 4,300 digits: read them all as Decimals
        if isinstance(exc, json.JSONDecodeError | JsonInvalid) or "digits" not in str(exc):
            raise
        return _BIG_INT_DECODER.decode(text)


def _text(data: bytes | bytearray | memoryview | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonInvalid(f"not UTF-8: {exc.reason} at byte {exc.start}") from None


def _check(text: str, value: Any) -> None:
    """The rules the standard parser does not keep, checked on the text (a repeated key's dropped
    value counts too); each costs a scan only when a cheap test hints."""
    if text.count("[") + text.count("{") > MAX_DEPTH and _text_depth(text) > MAX_DEPTH:
        raise JsonInvalid(f"nested deeper than {MAX_DEPTH} levels")
    if ("\\ud" in text or "\\uD" in text) and _lone_surrogate(text):
        raise JsonInvalid("a \\u escape leaves a lone surrogate (not Unicode text)")
    if _BIG_EXPONENT.search(text) and _exponent_too_big(text):
        raise JsonInvalid(f"a number's exponent is {MAX_EXPONENT} or more")


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NUMBER = re.compile(r"-?[0-9]+(?:\.([0-9]+))?(?:[eE]([+-]?)0*([0-9]+))?")


def _text_depth(text: str) -> int:
    brackets = [1 if c in "[{" else -1 for c in _STRING.sub("", text) if c in "[]{}"]
    return max(accumulate(brackets), default=0)


def _exponent_too_big(text: str) -> bool:
    """Whether a number's exponent (coefficient x 10^exponent, digits as written) reaches the limit."""
    for match in _NUMBER.finditer(_STRING.sub("", text)):
        frac, sign, digits = match.group(1) or "", match.group(2), match.group(3) or "0"
        if len(digits) > 20:
            return True
        exponent = (-1 if sign == "-" else 1) * int(digits) - len(frac)
        if abs(exponent) >= MAX_EXPONENT:
            return True
    return False


_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)


def _lone_surrogate(text: str) -> bool:
    """Whether a \\u escape of the text is half a surrogate pair without its other half (even one
    a repeated key drops later: the text itself is not Unicode)."""
    pending_high_end = -1
    for match in _ESCAPE.finditer(text):
        code = match.group(1)
        unit = int(code[1:], 16) if code[0] == "u" and len(code) == 5 else None
        high = unit is not None and 0xD800 <= unit <= 0xDBFF
        low = unit is not None and 0xDC00 <= unit <= 0xDFFF
        if pending_high_end >= 0:
            if not (low and match.start() == pending_high_end):
                return True
            pending_high_end = -1
            continue
        if low:
            return True
        if high:
            pending_high_end = match.end()
    return pending_high_end >= 0


# -- writing ------------------------------------------------------------------------------------------


def _fragment(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not a JSON value")


_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces, exact numbers. Used for keys, identities, images."""
    return dumps(value, sort_keys=True)


def dumps(value: Any, *, sort_keys: bool = False, indent: bool = False) -> str:
    """JSON text with exact numbers (``Decimal`` as its digits), for the journal and for people."""
    option = (_SORTED if sort_keys else 0) | (orjson.OPT_INDENT_2 if indent else 0)
    try:
        return orjson.dumps(value, default=_fragment, option=option).decode()
    except TypeError:  # orjson stops at 64-bit integers and 255 levels: the plain writer goes on
        return "".join(_write(value, sort_keys))


def _write(value: Any, sort_keys: bool) -> Iterator[str]:
    if isinstance(value, dict):
        items = sorted(value.items()) if sort_keys else value.items()
        yield "{"
        for i, (key, item) in enumerate(items):
            if not isinstance(key, str):
                raise TypeError(f"object key {key!r} is not text")
            yield ("," if i else "") + _string(key) + ":"
            yield from _write(item, sort_keys)
        yield "}"
    elif isinstance(value, list | tuple):
        yield "["
        for i, item in enumerate(value):
            if i:
                yield ","
            yield from _write(item, sort_keys)
        yield "]"
    elif isinstance(value, str):
        yield _string(value)
    elif value is None or isinstance(value, bool):
        yield {None: "null", True: "true", False: "false"}[value]
    elif isinstance(value, int | Decimal):
        yield str(value)
    else:
        yield orjson.dumps(value).decode()  # a float from Python code: orjson's shortest text


def _string(s: str) -> str:
    return orjson.dumps(s).decode()


# -- values as the tap reads them -----------------------------------------------------------------


def is_number(value: Any) -> bool:
    """A JSON number (int or Decimal; a bool is not one)."""
    return isinstance(value, int | Decimal) and not isinstance(value, bool)


def text_of(value: Any) -> str:
    """A value where text is wanted (a database name, a key column): text as is, else its JSON."""
    return value if isinstance(value, str) else canonical_json(value)


def exact(value: Any) -> Any:
    """A value decoded elsewhere (Avro through the registry) in this module's terms: floats become
    the Decimal of their shortest text, bytes their base64 text (as the JSON converter writes them)."""
    if isinstance(value, dict):
        return {str(k): exact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [exact(v) for v in value]
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
        return Decimal(repr(value))
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    return value
