"""`rewind keys init | new | show`: keys a person or a machine signs with, and the keyring that trusts them."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from processor.cli import main
from processor.security.keys import Keyring, SigningKey


def test_init_makes_the_keys_and_the_keyring_once(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    args = ["keys", "init", str(keys), "--key", "alice=operator", "--key", "bob=approver,finance"]
    made = CliRunner().invoke(main, args)
    assert made.exit_code == 0, made.output
    ring = Keyring.load(keys / "keyring.yaml")
    assert {k: sorted(v.roles) for k, v in ring.keys.items()} == {
        "alice": ["operator"],
        "bob": ["approver", "finance"],
    }
    alice = SigningKey.load(keys / "alice.pem")
    assert (
        ring.keys["alice"].verifies(alice.sign(b"x"), b"x")
        and (keys / "alice.pem").stat().st_mode & 0o777 == 0o600
    )
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "exists: nothing made" in again.output
    assert SigningKey.load(keys / "alice.pem").public_b64 == alice.public_b64, "an existing key is kept"


def test_init_refuses_a_key_without_roles(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["keys", "init", str(tmp_path), "--key", "alice"])
    assert result.exit_code == 2 and "expected ID=ROLE[,ROLE]" in result.output


def test_new_prints_the_keyring_entry_and_show_never_the_private_half(tmp_path: Path) -> None:
    made = CliRunner().invoke(
        main, ["keys", "new", "--id", "carol", "--role", "approver", "--dir", str(tmp_path)]
    )
    assert made.exit_code == 0, made.output
    [entry] = yaml.safe_load(made.stdout)["keys"]
    key = SigningKey.load(tmp_path / "carol.pem")
    assert entry == {"id": "carol", "public_key": key.public_b64, "roles": ["approver"]}
    shown = CliRunner().invoke(main, ["keys", "show", "--key-file", str(tmp_path / "carol.pem")])
    private = "".join(
        line for line in (tmp_path / "carol.pem").read_text().splitlines() if "-----" not in line
    )
    assert key.public_b64 in shown.stdout and private not in shown.output
    again = CliRunner().invoke(main, ["keys", "new", "--id", "carol", "--dir", str(tmp_path)])
    assert again.exit_code == 1 and "never overwritten" in again.output
