"""The gate over signed requests and control messages: what it admits, and every way it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.errors import ConfigError
from processor.security.gate import Gate, Refusal, SignatureRefused
from processor.security.keys import Keyring, Role, SigningKey
from processor.security.signature import HEADER, Kind, Signature, sign

NOW = 1_800_000_000_000
WINDOW = 300_000
ALICE, BOB, MALLORY = SigningKey.generate("alice"), SigningKey.generate("bob"), SigningKey.generate("alice")
KEYRING = Keyring.from_dict({"keys": [ALICE.keyring_entry(["operator"]), BOB.keyring_entry(["approver"])]})
BODY = b"\x08req-1\x0aalice some avro bytes"
OPERATOR = {Role.OPERATOR}


def _signed(
    key: SigningKey = ALICE, kind: Kind = Kind.REQUEST, body: bytes = BODY, at: int = NOW
) -> list[tuple[str, bytes | None]]:
    return [("other", b"x"), (HEADER, sign(key, kind, body, at).header())]


def _refusal(headers: list[tuple[str, bytes | None]] | None, body: bytes = BODY, **kw: object) -> Refusal:
    gate = kw.pop("gate", None) or Gate(KEYRING, WINDOW)
    assert isinstance(gate, Gate)
    kind = kw.pop("kind", Kind.REQUEST)
    with pytest.raises(SignatureRefused) as info:
        gate.admit(kind, body, headers, NOW, kw.pop("roles", OPERATOR))  # type: ignore[arg-type]
    return info.value.reason


def test_a_request_signed_by_an_operator_key_is_admitted_once() -> None:
    gate, headers = Gate(KEYRING, WINDOW), _signed()
    signer = gate.admit(Kind.REQUEST, BODY, headers, NOW + 1000, OPERATOR)
    assert (signer.key_id, signer.roles, signer.issued_ms) == ("alice", frozenset({"operator"}), NOW)
    assert _refusal(headers, gate=gate) is Refusal.REPLAYED


def test_each_refusal_names_its_reason() -> None:
    assert _refusal(None) is Refusal.UNSIGNED
    assert _refusal([("other", b"x")]) is Refusal.UNSIGNED
    assert _refusal([(HEADER, b"v1 key=alice ts=1 nonce=zz sig=abc")]) is Refusal.MALFORMED
    assert _refusal([*_signed(), *_signed()]) is Refusal.MALFORMED
    assert _refusal(_signed(SigningKey.generate("carol"))) is Refusal.UNKNOWN_KEY
    assert _refusal(_signed(MALLORY)) is Refusal.BAD_SIGNATURE  # forged: alice's id, another key
    assert _refusal(_signed(), BODY + b"!") is Refusal.BAD_SIGNATURE  # tampered
    assert (
        _refusal(_signed(kind=Kind.CONTROL)) is Refusal.BAD_SIGNATURE
    )  # an approval's signature on a request
    assert _refusal(_signed(at=NOW - WINDOW - 1)) is Refusal.EXPIRED
    assert _refusal(_signed(at=NOW + WINDOW + 1)) is Refusal.EXPIRED
    assert _refusal(_signed(BOB)) is Refusal.WRONG_ROLE


def test_a_refused_message_leaves_its_nonce_unspent() -> None:
    gate, headers = Gate(KEYRING, WINDOW), _signed(BOB)
    assert _refusal(headers, gate=gate) is Refusal.WRONG_ROLE
    assert gate.admit(Kind.REQUEST, BODY, headers, NOW, {Role.APPROVER}).key_id == "bob"


def test_a_nonce_remembered_from_before_a_restart_is_refused() -> None:
    headers = _signed()
    signature = Signature.parse(headers[1][1] or b"")
    assert signature is not None
    gate = Gate(KEYRING, WINDOW)
    gate.remember(signature.nonce, signature.issued_ms, NOW)
    assert _refusal(headers, gate=gate) is Refusal.REPLAYED


def test_an_unenforcing_gate_lets_unsigned_through_but_still_checks_signatures() -> None:
    gate = Gate(KEYRING, WINDOW, required=False)
    assert gate.admit(Kind.REQUEST, BODY, None, NOW, OPERATOR).key_id == "unsigned"
    assert _refusal(_signed(MALLORY), gate=gate) is Refusal.BAD_SIGNATURE


@settings(max_examples=3000, deadline=None)
@given(data=st.data())
def test_every_mutation_of_a_signed_message_is_refused(data: st.DataObject) -> None:
    """Flip, insert or delete bytes anywhere in the value or the signature header: never admitted."""
    header = sign(ALICE, Kind.REQUEST, BODY, NOW).header()
    target = data.draw(st.sampled_from(["body", "header"]))
    original = BODY if target == "body" else header
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        at = data.draw(st.integers(0, max(len(mutated) - 1, 0)))
        if op == "flip" and mutated:
            mutated[at] ^= data.draw(st.integers(1, 255))
        elif op == "insert":
            mutated.insert(at, data.draw(st.integers(0, 255)))
        elif mutated:
            del mutated[at]
    if bytes(mutated) == original:
        return
    body, sig = (bytes(mutated), header) if target == "body" else (BODY, bytes(mutated))
    with pytest.raises(SignatureRefused):
        Gate(KEYRING, WINDOW).admit(Kind.REQUEST, body, [(HEADER, sig)], NOW, OPERATOR)


def test_a_key_file_round_trips_and_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "alice.pem"
    ALICE.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = SigningKey.load(path)
    assert (loaded.key_id, loaded.public_b64) == ("alice", ALICE.public_b64)
    with pytest.raises(ConfigError, match="never overwritten"):
        BOB.save(path)


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ({"keys": "x"}, "`keys` list"),
        ({"keys": [{"id": "a", "public_key": "AAAA", "roles": ["operator"]}]}, "keys[0].public_key"),
        ({"keys": [{"id": "a", "public_key": ALICE.public_b64, "roles": []}]}, "keys[0].roles"),
        ({"keys": [{"id": "a b", "public_key": ALICE.public_b64, "roles": ["x"]}]}, "key id 'a b'"),
        ({"keys": [ALICE.keyring_entry(["operator"])] * 2}, "listed twice"),
    ],
)
def test_a_bad_keyring_says_what_is_wrong(doc: object, says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("[", r"\[").replace("]", r"\]")):
        Keyring.from_dict(doc)


def test_a_signature_spelled_another_way_is_refused() -> None:
    """Base64 ignores the spare bits of its last character and int() leading zeros: such a header would
    decode to the same signature, so a changed header could verify. One spelling is admitted."""
    header = sign(ALICE, Kind.REQUEST, BODY, NOW).header().decode()
    head, sig = header.split(" sig=")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(sig[-3])
    spare = alphabet[last ^ 1]  # the 4 data bits the same, a spare bit set
    variants = [f"{head} sig={sig[:-3]}{spare}==", header.replace(f"ts={NOW}", f"ts=0{NOW}")]
    for variant in variants:
        assert _refusal([(HEADER, variant.encode())]) is Refusal.MALFORMED, variant
