"""The gate every request and control message passes before the worker acts on it (pure).

A message is admitted when it carries one well-formed signature, by a key in the keyring, that
verifies over its exact bytes, issued within the window of now (either side: clocks differ), with
a nonce not seen within that window, by a key holding one of the roles the message needs. Anything
else is refused with the reason. Nonces older than the window need not be remembered: such a message
is refused as expired anyway. The ledger is the worker's state: rebuilt from the status topic, where
each request keeps the nonces of what it admitted, so a restart does not reopen the window.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from processor.errors import RewindError
from processor.security.keys import Keyring
from processor.security.signature import HEADER, Kind, Signature, signed_bytes

Headers = Sequence[tuple[str, bytes | None]]
UNSIGNED_KEY = "unsigned"  # the signer of what an unenforcing gate lets through unsigned


class Refusal(StrEnum):
    UNSIGNED = "unsigned"
    MALFORMED = "malformed signature"
    UNKNOWN_KEY = "unknown key"
    BAD_SIGNATURE = "bad signature"  # forged, or the bytes changed since they were signed
    EXPIRED = "expired"
    REPLAYED = "replayed"
    WRONG_ROLE = "wrong role"


class SignatureRefused(RewindError):
    """A message the gate does not admit; never retryable (the same bytes are refused again)."""

    def __init__(self, reason: Refusal, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Signer:
    """Who signed an admitted message, when, with which nonce, and the roles their key holds."""

    key_id: str
    roles: frozenset[str]
    issued_ms: int
    nonce: str


class Gate:
    def __init__(self, keyring: Keyring | None, window_ms: int, *, required: bool = True) -> None:
        self.keyring = keyring or Keyring({})
        self.window_ms = window_ms
        self.required = required
        self._seen: dict[str, int] = {}  # nonce -> issue time, within the window

    def admit(
        self, kind: Kind, body: bytes, headers: Headers | None, now_ms: int, roles: Iterable[str]
    ) -> Signer:
        """The signer, or ``SignatureRefused`` naming why not. ``roles``: any one of them suffices."""
        needed = frozenset(roles)
        signatures = [v for k, v in headers or () if k == HEADER]
        if not signatures:
            if not self.required:
                return Signer(UNSIGNED_KEY, needed, now_ms, "")
            raise SignatureRefused(Refusal.UNSIGNED, f"no {HEADER} header on this {kind.value}")
        if len(signatures) > 1 or signatures[0] is None:
            raise SignatureRefused(Refusal.MALFORMED, f"{len(signatures)} {HEADER} headers, or an empty one")
        signature = Signature.parse(signatures[0])
        if signature is None:
            raise SignatureRefused(
                Refusal.MALFORMED, f"the {HEADER} header is not `v1 key=.. ts=.. nonce=.. sig=..`"
            )
        key = self.keyring.keys.get(signature.key_id)
        if key is None:
            raise SignatureRefused(Refusal.UNKNOWN_KEY, f"key {signature.key_id!r} is not in the keyring")
        data = signed_bytes(kind, signature.key_id, signature.issued_ms, signature.nonce, body)
        if not key.verifies(signature.value, data):
            raise SignatureRefused(
                Refusal.BAD_SIGNATURE, f"the {kind.value} does not verify with key {key.key_id!r}"
            )
        age_ms = now_ms - signature.issued_ms
        if abs(age_ms) > self.window_ms:
            when = f"{age_ms / 1000:.0f}s ago" if age_ms > 0 else f"{-age_ms / 1000:.0f}s ahead"
            raise SignatureRefused(
                Refusal.EXPIRED, f"issued {when}; the window is {self.window_ms / 1000:.0f}s"
            )
        if signature.nonce in self._seen:
            raise SignatureRefused(Refusal.REPLAYED, f"nonce {signature.nonce} was seen already")
        if needed and not needed & key.roles:
            has = f"key {key.key_id!r} has roles {sorted(key.roles)}"
            raise SignatureRefused(
                Refusal.WRONG_ROLE, f"{has}; this {kind.value} needs one of {sorted(needed)}"
            )
        self.remember(signature.nonce, signature.issued_ms, now_ms)
        return Signer(key.key_id, key.roles, signature.issued_ms, signature.nonce)

    def remember(self, nonce: str, issued_ms: int, now_ms: int) -> None:
        """A nonce admitted (now, or before a restart: from the status topic)."""
        if nonce:
            self._seen[nonce] = issued_ms
        if len(self._seen) % 1024 == 0:  # forget what the window refuses anyway
            oldest = now_ms - self.window_ms
            self._seen = {n: t for n, t in self._seen.items() if t >= oldest}
