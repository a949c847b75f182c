"""What every ``civic`` command shares: error display, node and key options, output."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from civicledger.client import Client
from civicledger.crypto.keys import KeyPair
from civicledger.crypto.keystore import Keystore, default_home, resolve_passphrase
from civicledger.errors import LedgerError

__all__ = [
    "CliError",
    "LedgerGroup",
    "client_of",
    "echo_json",
    "home_option",
    "key_options",
    "load_key",
    "node_option",
]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_NODE = "http://127.0.0.1:8545"


class CliError(click.ClickException):
    """A failure reported as ``error: <message>`` on stderr, exit status 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=file is None, file=file)


class LedgerGroup(click.Group):
    """Turns every expected failure (``LedgerError``) into a one-line error, no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LedgerError as exc:
            raise CliError(exc.message) from exc


def node_option(fn: F) -> F:
    return click.option(
        "--node",
        "node_url",
        envvar="CIVIC_NODE",
        default=DEFAULT_NODE,
        show_default=True,
        help="API address of the node to talk to (or $CIVIC_NODE).",
    )(fn)


def home_option(fn: F) -> F:
    return click.option(
        "--home",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="CIVIC_HOME",
        default=None,
        help="Civic Ledger home directory holding keys/ (default: $CIVIC_HOME, else ~/.civic).",
    )(fn)


def key_options(fn: F) -> F:
    fn = click.option(
        "--passphrase-file",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="CIVIC_PASSPHRASE_FILE",
        default=None,
        help="File whose first line is the key's passphrase "
        "(default: $CIVIC_PASSPHRASE_FILE, $CIVIC_PASSPHRASE, else ask).",
    )(fn)
    fn = click.option(
        "--key", "key_name", required=True, help="Name of the signing key in the keystore."
    )(fn)
    return home_option(fn)


def load_key(home: Path | None, name: str, passphrase_file: Path | None) -> KeyPair:
    keystore = Keystore((home.expanduser() if home else default_home()) / "keys")
    if not keystore.exists(name):
        raise LedgerError(
            f"no key named {name!r} in {keystore.directory}; "
            f"create it with 'civic keys new {name}'",
            code="no_key",
        )
    passphrase = resolve_passphrase(file=passphrase_file, prompt_text=f"Passphrase for {name}")
    return keystore.load(name, passphrase)


def client_of(node_url: str) -> Client:
    return Client(node_url)


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False))
