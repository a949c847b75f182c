"""The ``civic`` command line."""

from __future__ import annotations

import click

from civicledger import __version__
from civicledger.cli.bench import bench
from civicledger.cli.chain import account, block, contract, doc, receipt, state, tx
from civicledger.cli.chaos import chaos
from civicledger.cli.common import LedgerGroup
from civicledger.cli.deploy import genesis, init
from civicledger.cli.keys import keys
from civicledger.cli.node import node, up, verify


@click.group(cls=LedgerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="civic")
def cli() -> None:
    """Civic Ledger: a distributed ledger for public administrations."""


for command in (
    keys,
    init,
    genesis,
    node,
    up,
    verify,
    tx,
    doc,
    account,
    block,
    receipt,
    state,
    contract,
    bench,
    chaos,
):
    cli.add_command(command)


def main() -> None:
    cli()
