"""Ed25519 keys: a private key a person or a machine signs with, and the keyring the worker trusts.

A private key lives in a PEM file (PKCS#8, mode 0600) named by its key id. The keyring is a YAML
file (or a Kubernetes Secret mounted as one) listing each key's public half and the roles it may act
in; a role is a name: ``operator`` requests and stops rollbacks, ``approver`` approves them, ``drill``
runs canary drills, and catalog action types may ask for further roles (``finance``).
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from processor.errors import ConfigError, Where

KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


class Role(StrEnum):
    OPERATOR = "operator"  # requests, pauses, resumes and aborts rollbacks
    APPROVER = "approver"  # approves a plan
    DRILL = "drill"  # requests and approves its own canary drills, nothing else


def check_key_id(key_id: str, where: Where | None = None) -> str:
    if not KEY_ID.match(key_id):
        raise ConfigError(
            f"key id {key_id!r} is not valid", where=where,
            hint="letters, digits and . _ @ - (at most 128), starting with a letter or digit",
        )  # fmt: skip
    return key_id


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    private: Ed25519PrivateKey

    @classmethod
    def generate(cls, key_id: str) -> SigningKey:
        return cls(check_key_id(key_id), Ed25519PrivateKey.generate())

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)

    @property
    def public_b64(self) -> str:
        raw = self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return base64.b64encode(raw).decode()

    def keyring_entry(self, roles: list[str]) -> dict[str, Any]:
        return {"id": self.key_id, "public_key": self.public_b64, "roles": roles}

    def save(self, path: Path) -> None:
        """Written once, readable by its owner only; an existing file is never overwritten."""
        pem = self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConfigError(
                f"{path} exists: a key is never overwritten", hint="choose another key id"
            ) from None
        with os.fdopen(fd, "wb") as out:
            out.write(pem)

    @classmethod
    def load(cls, path: Path, key_id: str | None = None) -> SigningKey:
        """The key in ``path``; its id is the file's name without ``.pem`` unless given."""
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(
                f"cannot read the signing key {path}: {exc}", hint="`rewind keys new --id ID`"
            ) from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
        return cls(check_key_id(key_id or path.name.removesuffix(".pem"), Where(file=str(path))), key)


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    public: Ed25519PublicKey
    roles: frozenset[str]

    def verifies(self, signature: bytes, data: bytes) -> bool:
        try:
            self.public.verify(signature, data)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Keyring:
    keys: dict[str, TrustedKey]

    @classmethod
    def load(cls, path: Path) -> Keyring:
        where = Where(file=str(path))
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read the keyring: {exc}", where=where) from exc
        return cls.from_dict(doc, where)

    @classmethod
    def from_dict(cls, doc: Any, where: Where | None = None) -> Keyring:
        entries = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            raise ConfigError("a keyring is a mapping with a `keys` list", where=where)
        keys: dict[str, TrustedKey] = {}
        for i, entry in enumerate(entries):
            key = _trusted(entry, f"keys[{i}]", where)
            if key.key_id in keys:
                raise ConfigError(f"keys[{i}]: key id {key.key_id!r} is listed twice", where=where)
            keys[key.key_id] = key
        return cls(keys)


def _trusted(entry: Any, field: str, where: Where | None) -> TrustedKey:
    if not isinstance(entry, dict) or not {"id", "public_key", "roles"} <= entry.keys():
        raise ConfigError(f"{field}: needs id, public_key and roles", where=where)
    roles = entry["roles"]
    if not isinstance(roles, list) or not roles or not all(isinstance(r, str) and r for r in roles):
        raise ConfigError(f"{field}.roles: a non-empty list of role names", where=where)
    try:
        raw = base64.b64decode(str(entry["public_key"]), validate=True)
        public = Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise ConfigError(
            f"{field}.public_key: not a base64 Ed25519 public key ({exc})", where=where
        ) from exc
    return TrustedKey(check_key_id(str(entry["id"]), where), public, frozenset(roles))


def local_key(path: Path | None) -> SigningKey | None:
    """The key this process signs with (``signing.key_file``), or None: what it sends goes unsigned."""
    return SigningKey.load(path) if path is not None else None


def new_keyring(directory: Path, roles_by_key: dict[str, list[str]]) -> tuple[Path, dict[str, Path]]:
    """New keys under ``directory`` and the keyring trusting them (a demo's or a test's people):
    the keyring's path, and each key's file."""
    files, entries = {}, []
    for key_id, roles in roles_by_key.items():
        key = SigningKey.generate(key_id)
        files[key_id] = directory / f"{key_id}.pem"
        key.save(files[key_id])
        entries.append(key.keyring_entry(roles))
    keyring = directory / "keyring.yaml"
    keyring.write_text(yaml.safe_dump({"keys": entries}, sort_keys=False))
    return keyring, files
