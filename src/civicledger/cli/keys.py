"""``civic keys``: create, list and show the keys of the local encrypted keystore.

The keystore lives in ``<home>/keys`` where ``<home>`` is ``--home``, else ``$CIVIC_HOME``,
else ``~/.civic``. Passphrases come from ``--passphrase-file``, else ``$CIVIC_PASSPHRASE``,
else an interactive prompt; they are never accepted as a command-line argument (which
other users could read in the process list). No command ever prints a private key.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from civicledger.cli.common import CliError, LedgerGroup
from civicledger.crypto.keystore import Keystore, default_home, resolve_passphrase

__all__ = ["keys"]

_META_KEY = "civicledger.cli.keys.keystore"


def _keystore(ctx: click.Context) -> Keystore:
    keystore = ctx.meta.get(_META_KEY)
    if not isinstance(keystore, Keystore):  # pragma: no cover - set by the group
        raise RuntimeError("the keys group did not open a keystore")
    return keystore


@click.group(cls=LedgerGroup)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="CIVIC_HOME",
    default=None,
    help="Civic Ledger home directory (default: $CIVIC_HOME, else ~/.civic).",
)
@click.pass_context
def keys(ctx: click.Context, home: Path | None) -> None:
    """Manage the keys of the local encrypted keystore."""
    directory = (home.expanduser() if home is not None else default_home()) / "keys"
    ctx.meta[_META_KEY] = Keystore(directory)


@keys.command("new")
@click.argument("name")
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="CIVIC_PASSPHRASE_FILE",
    default=None,
    help="Read the passphrase from the first line of this file "
    "(default: $CIVIC_PASSPHRASE, else ask twice).",
)
@click.pass_context
def new_key(ctx: click.Context, name: str, passphrase_file: Path | None) -> None:
    """Create a new key NAME, encrypted with a passphrase."""
    keystore = _keystore(ctx)
    if keystore.exists(name):  # fail before asking for a passphrase
        raise CliError(f"a key named {name!r} already exists ({keystore.path_of(name)})")
    passphrase = resolve_passphrase(file=passphrase_file, confirm=True)
    keypair = keystore.create(name, passphrase)
    click.echo(f"created key {name!r} in {keystore.path_of(name)}")
    click.echo(f"address:    {keypair.address.hex()}")
    click.echo(f"public key: {keypair.public_key.hex()}")


@keys.command("list")
@click.pass_context
def list_keys(ctx: click.Context) -> None:
    """List the stored keys: name, address and public key."""
    keystore = _keystore(ctx)
    infos = keystore.list()
    if not infos:
        click.echo(f"no keys in {keystore.directory}")
        return
    table = Table()
    # In a narrow terminal, fold long values onto several lines rather than cut them.
    for header in ("name", "address", "public key"):
        table.add_column(header, overflow="fold")
    for info in infos:
        table.add_row(info.name, info.address, info.public_key)
    console = Console(highlight=False)
    if not console.is_terminal:
        # Piped output: never truncate or fold the hex values someone may copy.
        console = Console(highlight=False, width=max(console.width, 240))
    console.print(f"keys in {keystore.directory}", soft_wrap=True)
    console.print(table)


@keys.command("show")
@click.argument("name")
@click.pass_context
def show_key(ctx: click.Context, name: str) -> None:
    """Show the address, public key and file of key NAME (never the private key)."""
    info = _keystore(ctx).info(name)
    click.echo(f"name:       {info.name}")
    click.echo(f"address:    {info.address}")
    click.echo(f"public key: {info.public_key}")
    click.echo(f"file:       {info.path}")


@keys.command("export-public")
@click.argument("name")
@click.pass_context
def export_public(ctx: click.Context, name: str) -> None:
    """Print the public part of key NAME as JSON, to share with others."""
    info = _keystore(ctx).info(name)
    document = {"name": info.name, "address": info.address, "public_key": info.public_key}
    click.echo(json.dumps(document, indent=2))
