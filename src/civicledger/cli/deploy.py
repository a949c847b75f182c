"""``civic init`` and ``civic genesis``: setting up nodes of a real network across machines.

The usual ceremony (see docs/guides/running-a-network.md):

1. each agency runs ``civic init --home DIR --passphrase-file F`` on its machine and sends
   the printed validator public key to the coordinator;
2. the coordinator runs ``civic genesis create --chain-id ID --validator KEY ...`` and
   sends ``genesis.json`` to everyone;
3. each agency runs ``civic init --home DIR --genesis genesis.json --peer HOST:PORT ...``
   (again, to complete its config) and ``civic node start --config DIR/config.toml``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import click

from civicledger.chain.block import Validator, ValidatorSet
from civicledger.chain.genesis import ConsensusParams, ContractPolicy, Genesis, load_genesis
from civicledger.cli.common import CliError, LedgerGroup
from civicledger.crypto.keystore import Keystore, resolve_passphrase
from civicledger.node.config import ApiConfig, NodeConfig, render_config
from civicledger.p2p.peers import P2PConfig
from civicledger.types import Address, PublicKey, parse_hex, parse_public_key

__all__ = ["genesis", "init"]


def _parse_validator(text: str) -> Validator:
    key_text, _, power_text = text.partition(":")
    try:
        power = int(power_text) if power_text else 1
    except ValueError:
        raise CliError(f"validator power in {text!r} is not an integer") from None
    if power < 1:
        raise CliError(f"validator power in {text!r} must be at least 1")
    return Validator(parse_public_key(parse_hex(key_text, what="validator key", size=32)), power)


def _check_address(text: str) -> str:
    if ":" not in text or not text.rpartition(":")[2].isdigit():
        raise CliError(f"{text!r} is not HOST:PORT")
    return text


@click.command()
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option(
    "--passphrase-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="First line: the passphrase that encrypts this node's keys.",
)
@click.option("--chain-id", help="Start a NEW network with this node as its only validator.")
@click.option(
    "--genesis",
    "genesis_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Join the network of this genesis file.",
)
@click.option("--peer", "peers", multiple=True, help="HOST:PORT of another node (repeat).")
@click.option("--api-host", default="127.0.0.1", show_default=True)
@click.option("--api-port", default=8545, show_default=True, type=click.IntRange(1, 65535))
@click.option("--p2p-host", default="0.0.0.0", show_default=True)
@click.option("--p2p-port", default=26656, show_default=True, type=click.IntRange(1, 65535))
@click.option("--observer", is_flag=True, help="Follow the chain without validating.")
def init(
    home: Path,
    passphrase_file: Path,
    chain_id: str | None,
    genesis_path: Path | None,
    peers: tuple[str, ...],
    api_host: str,
    api_port: int,
    p2p_host: str,
    p2p_port: int,
    observer: bool,
) -> None:
    """Create (or complete) a node folder: its key, its config, and its genesis."""
    if chain_id and genesis_path:
        raise CliError("give --chain-id (new network) or --genesis (join one), not both")
    passphrase = resolve_passphrase(file=passphrase_file, prompt=False)
    keystore = Keystore(home / "keys")
    key_name = "node" if observer else "validator"
    key = (
        keystore.load(key_name, passphrase)
        if keystore.exists(key_name)
        else keystore.create(key_name, passphrase)
    )
    if chain_id:
        new = Genesis(
            chain_id=chain_id,
            time_ms=time.time_ns() // 1_000_000,
            validators=ValidatorSet.of([Validator(key.public_key, 1)]),
            issuers=(key.address,),
        )
        (home / "genesis.json").write_text(json.dumps(new.to_json(), indent=2) + "\n")
    elif genesis_path is not None:
        load_genesis(genesis_path)  # refuse a broken file before copying it
        if genesis_path.resolve() != (home / "genesis.json").resolve():
            shutil.copyfile(genesis_path, home / "genesis.json")
    config = NodeConfig(
        home=home,
        name=home.name,
        validator_key=None if observer else "validator",
        node_key="node" if observer else None,
        api=ApiConfig(host=api_host, port=api_port),
        p2p=P2PConfig(host=p2p_host, port=p2p_port, peers=tuple(_check_address(p) for p in peers)),
    )
    (home / "config.toml").write_text(render_config(config))
    role = "node" if observer else "validator"
    click.echo(f"{role} public key: {key.public_key.hex()}")
    click.echo(f"address:          {key.address.hex()}")
    click.echo(f"config:           {home / 'config.toml'}")
    if (home / "genesis.json").exists():
        click.echo(
            f"start it with:    CIVIC_PASSPHRASE_FILE={passphrase_file} "
            f"civic node start --config {home / 'config.toml'}"
        )
    else:
        click.echo("next: send the public key to the network's coordinator, then run this")
        click.echo("      again with --genesis genesis.json and --peer HOST:PORT options")


@click.group(cls=LedgerGroup)
def genesis() -> None:
    """Create and inspect genesis files."""


@genesis.command("create")
@click.option("--chain-id", required=True)
@click.option(
    "--validator",
    "validators",
    multiple=True,
    required=True,
    help="PUBLIC_KEY[:POWER] of a validator (repeat).",
)
@click.option("--issuer", "issuers", multiple=True, help="Address allowed to mint (repeat).")
@click.option("--node", "nodes", multiple=True, help="Public key of a non-validator node.")
@click.option("--block-interval-ms", default=1_000, show_default=True, type=click.IntRange(10))
@click.option(
    "--empty-block-interval-ms", default=10_000, show_default=True, type=click.IntRange(0)
)
@click.option(
    "--deployment",
    type=click.Choice(["approval", "open"]),
    default="approval",
    show_default=True,
    help="User contracts run after the organisations approve them, or at once (public).",
)
@click.option(
    "--deploy-fee-per-byte",
    default=0,
    show_default=True,
    type=click.IntRange(0, 2**64),
    help="Native currency burnt from the deployer per byte of contract source.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
def genesis_create(
    chain_id: str,
    validators: tuple[str, ...],
    issuers: tuple[str, ...],
    nodes: tuple[str, ...],
    block_interval_ms: int,
    empty_block_interval_ms: int,
    deployment: str,
    deploy_fee_per_byte: int,
    output: Path,
) -> None:
    """Write the genesis file of a new network."""
    new = Genesis(
        chain_id=chain_id,
        time_ms=time.time_ns() // 1_000_000,
        validators=ValidatorSet.of([_parse_validator(v) for v in validators]),
        issuers=tuple(Address(parse_hex(a, what="issuer address", size=20)) for a in issuers),
        params=ConsensusParams(
            block_interval_ms=block_interval_ms, empty_block_interval_ms=empty_block_interval_ms
        ),
        nodes=tuple(PublicKey(parse_hex(k, what="node key", size=32)) for k in nodes),
        contracts=ContractPolicy(deployment, deploy_fee_per_byte),
    )
    Genesis.from_json(new.to_json())  # the file we write must load
    output.write_text(json.dumps(new.to_json(), indent=2) + "\n")
    block = load_genesis(output)
    click.echo(f"wrote {output}: chain {chain_id}, {len(validators)} validators")
    click.echo(f"validator set hash {block.validators.hash.hex()}")
