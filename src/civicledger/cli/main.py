"""The ``civic`` command line."""

from __future__ import annotations

import click

from civicledger import __version__
from civicledger.cli.keys import keys


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="civic")
def cli() -> None:
    """Civic Ledger: a distributed ledger for public administrations."""


cli.add_command(keys)


def main() -> None:
    cli()
