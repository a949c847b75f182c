"""``civic init``, ``node start``, ``up`` and ``verify``: creating and running nodes."""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import httpx

from civicledger.chain.genesis import load_genesis
from civicledger.cli.common import CliError, LedgerGroup
from civicledger.crypto.keystore import resolve_passphrase
from civicledger.node.config import load_config
from civicledger.node.localnet import LOCALNET_CHAIN_ID, create_single_validator_network
from civicledger.node.verify import verify_chain
from civicledger.storage.sqlite import BlockStore

__all__ = ["init", "node", "up", "verify"]


@click.command()
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder to create for the node.",
)
@click.option("--chain-id", required=True, help="Name of the new network.")
@click.option("--port", default=8545, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--passphrase-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="First line: the passphrase that encrypts the node's keys.",
)
def init(home: Path, chain_id: str, port: int, passphrase_file: Path) -> None:
    """Create a new single-validator network in HOME (keys, genesis.json, config.toml)."""
    if (home / "config.toml").exists():
        raise CliError(f"{home} already holds a node (config.toml exists)")
    passphrase = resolve_passphrase(file=passphrase_file, prompt=False)
    path = create_single_validator_network(
        home, chain_id=chain_id, port=port, passphrase=passphrase
    )
    (home / "passphrase").unlink()  # the operator keeps their own passphrase file
    text = path.read_text().replace('passphrase_file = "passphrase"\n', "")
    path.write_text(text)
    click.echo(f"created {path}; start it with: civic node start --config {path}")
    click.echo("set CIVIC_PASSPHRASE_FILE or CIVIC_PASSPHRASE to unlock the validator key")


@click.group(cls=LedgerGroup)
def node() -> None:
    """Run a node."""


@node.command("start")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
)
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning"]))
def node_start(config_path: Path, log_level: str) -> None:
    """Start the node described by a config.toml; stop it with Ctrl-C or SIGTERM."""
    import logging

    from civicledger.node.service import run_node

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run_node(config_path)


def _status_line(url: str) -> str:
    try:
        status = httpx.get(f"{url}/v1/status", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return f"{url}  (not answering)"
    head = status["head"]
    return (
        f"{url}  height {head['height']}  block {head['hash'][:12]}  "
        f"mempool {status['mempool']['size']}"
    )


@click.command()
@click.option("--validators", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".civic/localnet"),
    show_default=True,
    help="Folder of the local network (reused if it exists).",
)
@click.option("--port", default=8545, show_default=True, type=click.IntRange(1, 65535))
@click.option("--reset", is_flag=True, help="Delete the local network first.")
def up(validators: int, home: Path, port: int, reset: bool) -> None:
    """Start a local network and show its status until Ctrl-C."""
    if validators != 1:
        raise CliError("this version runs single-validator networks only; use --validators 1")
    home = home.resolve()
    node_home = home / "node0"
    if reset and home.exists():
        import shutil

        shutil.rmtree(home)
    if not (node_home / "config.toml").exists():
        click.echo(f"creating a local network in {home}")
        create_single_validator_network(
            node_home,
            chain_id=LOCALNET_CHAIN_ID,
            port=port,
            passphrase=secrets.token_urlsafe(16),
        )
    config = load_config(node_home / "config.toml")
    url = f"http://{config.api.host}:{config.api.port}"
    log_path = node_home / "node.log"
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "civicledger",
                "node",
                "start",
                "--config",
                str(node_home / "config.toml"),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    click.echo(f"node0 API: {url}   (log: {log_path})")
    click.echo(f"keys: {node_home / 'keys'}  (passphrase in {node_home / 'passphrase'})")
    click.echo(
        "try:  export CIVIC_HOME="
        + str(node_home)
        + " CIVIC_PASSPHRASE_FILE="
        + str(node_home / "passphrase")
    )
    click.echo("      civic account mint --key issuer --to <address> --amount 100")
    click.echo("Ctrl-C stops the network")
    try:
        while not stopping:
            if process.poll() is not None:
                raise CliError(f"node0 exited with status {process.returncode}; see {log_path}")
            click.echo(_status_line(url))
            for _ in range(20):
                if stopping or process.poll() is not None:
                    break
                time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        click.echo("network stopped")


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The node's config.toml (gives data_dir and genesis).",
)
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--genesis", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def verify(config_path: Path | None, data_dir: Path | None, genesis: Path | None) -> None:
    """Prove the node's stored chain intact: links, roots, signatures, re-execution."""
    if config_path is not None:
        config = load_config(config_path)
        data_dir = config.resolve(config.data_dir)
        genesis = config.resolve(config.genesis)
    if data_dir is None or genesis is None:
        raise CliError("give --config, or both --data-dir and --genesis")
    db = data_dir / "chain.db"
    if not db.exists():
        raise CliError(f"no chain database at {db}")
    store = BlockStore(db)
    try:
        report = verify_chain(store, load_genesis(genesis))
    finally:
        store.close()
    if not report.ok:
        raise CliError(f"FAILED at block {report.failed_height}: {report.problem}")
    click.echo(
        f"OK: {report.blocks} blocks (head {report.head_height}, {report.head_hash}), "
        f"{report.transactions} transactions, {report.state_keys} state keys verified"
    )
