"""``rewind keys new | show``: the Ed25519 keys requests, approvals and drills are signed with."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from processor.cli.base import Context, pass_context

ROLES = ["operator", "approver", "drill"]


@click.group("keys")
def keys_group() -> None:
    """Signing keys: make one, or show one's public half and its keyring entry."""


@keys_group.command("new")
@click.option("--id", "key_id", required=True, help="The key's id (a person or a machine: alice, ci-drill).")
@click.option("--role", "roles", multiple=True, default=["operator"], show_default=True,
              help=f"A role it holds (repeat): {', '.join(ROLES)}, or a catalog approval_role.")  # fmt: skip
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the private key goes (default: REWIND_SIGNING__KEY_DIR).")  # fmt: skip
@pass_context
def new(ctx: Context, key_id: str, roles: tuple[str, ...], directory: Path | None) -> None:
    """Make a key: the private half in DIR/ID.pem (mode 0600, never overwritten), and on stdout the
    keyring entry to add to the worker's keyring (REWIND_SIGNING__KEYRING_FILE)."""
    path, entry = ctx.app().new_key(key_id, list(roles), directory)
    ctx.err.print(f"private key: {path} (sign with it: REWIND_SIGNING__KEY_FILE={path})")
    click.echo(yaml.safe_dump({"keys": [entry]}, sort_keys=False).rstrip())


@keys_group.command("show")
@click.option("--key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The private key (default: REWIND_SIGNING__KEY_FILE).")  # fmt: skip
@click.option("--role", "roles", multiple=True, default=["operator"], show_default=True)
@pass_context
def show(ctx: Context, key_file: Path | None, roles: tuple[str, ...]) -> None:
    """The key's id and public key, as a keyring entry (the private half is never printed)."""
    click.echo(
        yaml.safe_dump({"keys": [ctx.app().key_entry(key_file, list(roles))]}, sort_keys=False).rstrip()
    )


@keys_group.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--key", "keys", multiple=True, required=True, metavar="ID=ROLE[,ROLE]",
              help="A key to make and the roles the keyring grants it (repeat).")  # fmt: skip
@pass_context
def init(ctx: Context, directory: Path, keys: tuple[str, ...]) -> None:
    """Make keys and the keyring trusting them in DIRECTORY (a deployment's first people: who requests,
    who approves, the processor's drill key). An existing keyring is left alone."""
    roles = {}
    for spec in keys:
        key_id, _, granted = spec.partition("=")
        if not key_id or not granted:
            raise click.BadParameter(f"{spec!r}: expected ID=ROLE[,ROLE]", param_hint="--key")
        roles[key_id] = [r.strip() for r in granted.split(",") if r.strip()]
    keyring, made = ctx.app().new_keyring(directory, roles)
    if not made:
        ctx.out.print(f"keyring {keyring} exists: nothing made")
        return
    for key_id, path in made.items():
        ctx.out.print(f"{key_id}: {path} ({', '.join(roles[key_id])})")
    ctx.out.print(f"keyring: {keyring} (REWIND_SIGNING__KEYRING_FILE)")


def register(main: click.Group) -> None:
    main.add_command(keys_group)
