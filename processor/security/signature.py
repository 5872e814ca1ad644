"""A signature over one control message, carried in its ``rewind-signature`` header.

What is signed is the record's exact bytes (the Kafka value), prefixed by what kind of message it is,
the key id, the issue time and a nonce: a request's signature cannot pass as an approval's, and a
value changed by a single bit, a new issue time or a reused signature on other bytes fail to verify.
The header is ``v1 key=<id> ts=<ms> nonce=<32 hex> sig=<base64>``.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from processor.security.keys import SigningKey, check_key_id

HEADER = "rewind-signature"
_FORMAT = re.compile(
    r"^v1 key=(?P<key>[A-Za-z0-9][A-Za-z0-9._@-]{0,127}) ts=(?P<ts>[0-9]{1,15}) "
    r"nonce=(?P<nonce>[0-9a-f]{32}) sig=(?P<sig>[A-Za-z0-9+/]{86}==)$"
)


class Kind(StrEnum):
    """What a signature is for (the topic a message belongs on)."""

    REQUEST = "request"
    CONTROL = "control"


@dataclass(frozen=True)
class Signature:
    key_id: str
    issued_ms: int
    nonce: str
    value: bytes

    def header(self) -> bytes:
        sig = base64.b64encode(self.value).decode()
        return f"v1 key={self.key_id} ts={self.issued_ms} nonce={self.nonce} sig={sig}".encode()

    @classmethod
    def parse(cls, header: bytes) -> Signature | None:
        """``None`` when the header is not a well-formed signature."""
        try:
            match = _FORMAT.match(header.decode("ascii"))
        except UnicodeDecodeError:
            return None
        if match is None:
            return None
        try:
            value = base64.b64decode(match["sig"], validate=True)
        except binascii.Error:
            return None
        signature = cls(match["key"], int(match["ts"]), match["nonce"], value)
        # One spelling per signature: no leading zeros, no stray bits in the base64's last character.
        return signature if signature.header() == header else None


def signed_bytes(kind: Kind, key_id: str, issued_ms: int, nonce: str, body: bytes) -> bytes:
    return f"kafka-rewind signature v1\n{kind.value}\n{key_id}\n{issued_ms}\n{nonce}\n".encode() + body


def sign(key: SigningKey, kind: Kind, body: bytes, now_ms: int, nonce: str | None = None) -> Signature:
    nonce = nonce or secrets.token_hex(16)
    check_key_id(key.key_id)
    return Signature(key.key_id, now_ms, nonce, key.sign(signed_bytes(kind, key.key_id, now_ms, nonce, body)))


def signed_headers(key: SigningKey | None, kind: Kind, body: bytes, now_ms: int) -> list[tuple[str, bytes]]:
    """The headers that carry ``body``'s signature by ``key`` (none without a key: unsigned)."""
    return [] if key is None else [(HEADER, sign(key, kind, body, now_ms).header())]
