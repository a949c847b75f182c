"""``civic init``, ``node start``, ``up`` and ``verify``: creating and running nodes."""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
import httpx

from civicledger.chain.genesis import load_genesis
from civicledger.cli.common import CliError, LedgerGroup
from civicledger.errors import LedgerError
from civicledger.node.config import load_config
from civicledger.node.localnet import create_network, start_node_process
from civicledger.node.verify import verify_chain
from civicledger.storage.sqlite import BlockStore

__all__ = ["node", "up", "verify"]


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


def _status_line(name: str, url: str) -> str:
    try:
        status = httpx.get(f"{url}/v1/status", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return f"{name} {url}  (not answering)"
    head = status["head"]
    consensus = status.get("consensus") or {}
    return (
        f"{name} {url}  height {head['height']}  round {consensus.get('round', '-')}  "
        f"peers {consensus.get('peers', '-')}  mempool {status['mempool']['size']}  "
        f"block {head['hash'][:12]}"
    )


@click.command()
@click.option("--validators", default=4, show_default=True, type=click.IntRange(1, 32))
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".civic/localnet"),
    show_default=True,
    help="Folder of the local network (reused if it exists with the same size).",
)
@click.option(
    "--port",
    default=8545,
    show_default=True,
    type=click.IntRange(1, 65000),
    help="API port of node0; node i listens on port + i.",
)
@click.option(
    "--p2p-port",
    default=26656,
    show_default=True,
    type=click.IntRange(1, 65000),
    help="P2P port of node0; node i listens on p2p-port + i.",
)
@click.option("--reset", is_flag=True, help="Delete the local network first.")
def up(validators: int, home: Path, port: int, p2p_port: int, reset: bool) -> None:
    """Start a local network of VALIDATORS nodes and show its status until Ctrl-C."""
    home = home.resolve()
    if reset and home.exists():
        shutil.rmtree(home)
    existing = sorted(home.glob("node*/config.toml"))
    if existing and len(existing) != validators:
        raise CliError(
            f"{home} holds a network of {len(existing)} nodes; use --validators "
            f"{len(existing)} or --reset"
        )
    if not existing:
        click.echo(f"creating a local network of {validators} validators in {home}")
        existing = create_network(
            home,
            validators=validators,
            api_ports=[port + i for i in range(validators)],
            p2p_ports=[p2p_port + i for i in range(validators)],
            passphrase=secrets.token_urlsafe(16),
        )
    processes: list[tuple[str, str, subprocess.Popen[bytes], Path]] = []
    for config_path in existing:
        config = load_config(config_path)
        log_path = config_path.parent / "node.log"
        process = start_node_process(config_path)
        url = f"http://{config.api.host}:{config.api.port}"
        processes.append((config.name, url, process, log_path))
        click.echo(f"{config.name} API: {url}   log: {log_path}")
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    node0 = existing[0].parent
    click.echo(
        f"try:  export PATH={Path(sys.executable).parent}:$PATH CIVIC_HOME={node0} "
        f"CIVIC_PASSPHRASE_FILE={node0 / 'passphrase'}"
    )
    click.echo("      civic account mint --key issuer --to <address> --amount 100")
    click.echo("Ctrl-C stops the network")
    watched = list(processes)
    shown: list[str] = []
    shown_at = 0.0
    try:
        while not stopping.is_set():
            for entry in list(watched):
                name, _url, process, log_path = entry
                if process.poll() is None:
                    continue
                if process.returncode == 0:
                    # A node stops cleanly when asked (Ctrl-C reaches the whole terminal
                    # group): the network stops with it.
                    click.echo(f"{name} stopped")
                    stopping.set()
                    break
                # A node that dies (kill -9, a crash) leaves the others running, as in a
                # real network; it catches up when started again.
                watched.remove(entry)
                click.echo(
                    f"{name} exited with status {process.returncode} (see {log_path}); the "
                    f"others go on. Start it again with: civic node start --config "
                    f"{log_path.parent / 'config.toml'}"
                )
            if stopping.is_set():
                break
            if not watched:
                raise CliError("every node has exited; see their node.log files")
            # Status lines when something changed, or every 30 s.
            lines = [_status_line(name, url) for name, url, _, _ in watched]
            if lines != shown or time.monotonic() - shown_at > 30:
                for line in lines:
                    click.echo(line)
                shown, shown_at = lines, time.monotonic()
            stopping.wait(2.0)
    except KeyboardInterrupt:
        pass
    finally:
        for _, _, process, _ in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for _, _, process, _ in processes:
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


@node.command("resync")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
)
def node_resync(config_path: Path) -> None:
    """Set a damaged chain database aside so the node re-syncs from its peers.

    The old database is kept (renamed) for inspection. The record of the validator's last
    signature is carried over, so a validator can never sign twice for one height, round
    and step; if it cannot be read, nothing is changed.
    """
    import sqlite3

    from civicledger.node.signer_state import SignerState

    config = load_config(config_path)
    data_dir = config.resolve(config.data_dir)
    db = data_dir / "chain.db"
    if not db.exists():
        raise CliError(f"no chain database at {db}")
    # The last-signature record must survive: from its own file, or, for a database of
    # an earlier version, from inside the database.
    try:
        record = SignerState(data_dir).load()
    except LedgerError as exc:
        raise CliError(f"{exc}; nothing was changed") from None
    if record is None:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                row = conn.execute("SELECT value FROM meta WHERE key = 'last_signed'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise CliError(
                f"cannot read the last-signature record from {db} ({exc}) and there is no "
                f"{SignerState(data_dir).path.name} file; refusing to reset a validator that "
                "might then sign twice"
            ) from None
        record = None if row is None else bytes(row[0])
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = data_dir.with_name(f"{data_dir.name}.damaged-{stamp}")
    data_dir.rename(aside)
    data_dir.mkdir(parents=True)
    if record is not None:
        SignerState(data_dir).save(record)
    click.echo(f"moved the damaged data to {aside}")
    click.echo(f"start the node (civic node start --config {config_path}): it re-syncs from peers")
