"""Running a node: the event loop, the peers, consensus and the HTTP server.

Everything touching node state runs on one asyncio loop (uvloop): API handlers, peer
messages, consensus timers. ``run_node`` opens the node from its configuration, starts
the peer manager, the consensus driver and the API, and stops them in reverse order on
SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
import uvloop

from civicledger import __version__
from civicledger.api.app import create_app
from civicledger.chain.genesis import load_genesis
from civicledger.contracts.sandbox import CONTRACT_RUNTIME
from civicledger.crypto.keys import KeyPair
from civicledger.crypto.keystore import Keystore, resolve_passphrase
from civicledger.encoding import Value
from civicledger.mempool.pool import verify_each
from civicledger.metrics import Metrics
from civicledger.node.config import NodeConfig, load_config
from civicledger.node.consensus import ConsensusDriver
from civicledger.node.node import Node
from civicledger.node.verifier import SignatureVerifier
from civicledger.p2p.peers import Peer, PeerManager
from civicledger.p2p.secure import HandshakeError
from civicledger.state.system import get_allowed_nodes
from civicledger.types import PublicKey

__all__ = ["open_node", "run_node", "serve"]

log = logging.getLogger(__name__)


def load_keys(config: NodeConfig) -> tuple[KeyPair | None, KeyPair]:
    """The validator key (if any) and the node key (the validator key by default)."""
    names = [n for n in (config.validator_key, config.node_key) if n]
    if not names:
        raise HandshakeError("the configuration names neither validator_key nor node_key")
    passphrase_file = config.resolve(config.passphrase_file) if config.passphrase_file else None
    passphrase = resolve_passphrase(file=passphrase_file, prompt=True)
    keystore = Keystore(config.resolve(config.keystore))
    validator = keystore.load(config.validator_key, passphrase) if config.validator_key else None
    if config.node_key and config.node_key != config.validator_key:
        node_key = keystore.load(config.node_key, passphrase)
    else:
        assert validator is not None
        node_key = validator
    return validator, node_key


def open_node(
    config: NodeConfig,
    validator_key: KeyPair | None = None,
    verifier: SignatureVerifier | None = None,
) -> Node:
    genesis = load_genesis(config.resolve(config.genesis))
    return Node(
        config.resolve(config.data_dir),
        genesis,
        validator_key,
        mempool_limits=config.mempool,
        state_history=config.state_history,
        verify=verifier or verify_each,
        verify_async=verifier.verify_async if verifier else None,
    )


async def serve(node: Node, config: NodeConfig, node_key: KeyPair) -> None:
    metrics = Metrics()
    genesis_hash = node.store.get_meta("genesis_hash") or b""
    driver: ConsensusDriver | None = None

    def hello() -> dict[str, Value]:
        return {
            "chain_id": node.chain_id,
            "genesis_hash": genesis_hash,
            "height": node.head.height,
            "version": __version__,
            "contract_runtime": CONTRACT_RUNTIME,
        }

    def check_hello(peer_key: PublicKey, peer_hello: dict[str, Value]) -> None:
        # Same network, same history, and allowed in.
        if peer_hello.get("chain_id") != node.chain_id:
            raise HandshakeError(f"peer is on chain {peer_hello.get('chain_id')!r}")
        if peer_hello.get("genesis_hash") != genesis_hash:
            raise HandshakeError("peer has a different genesis block")
        if peer_hello.get("contract_runtime") != CONTRACT_RUNTIME:
            raise HandshakeError(
                f"peer runs contracts on {peer_hello.get('contract_runtime')!r}, this node on "
                f"{CONTRACT_RUNTIME!r}: every node of a network must run the same Python "
                "minor version, or user contracts could give different results"
            )
        if peer_key not in get_allowed_nodes(node.committed):
            raise HandshakeError(f"node key {peer_key.hex()} is not on the node allowlist")

    def on_message(peer: Peer, msg_type: str, payload: Value) -> None:
        assert driver is not None
        driver.on_message(peer, msg_type, payload)

    def on_connect(peer: Peer) -> None:
        assert driver is not None
        driver.on_connect(peer)

    peers = PeerManager(
        node_key,
        config.p2p,
        hello=hello,
        check_hello=check_hello,
        on_message=on_message,
        on_connect=on_connect,
        metrics=metrics,
    )
    if config.byzantine:
        from civicledger.node.byzantine import ByzantineDriver

        driver = ByzantineDriver(
            node, peers, config.byzantine, timeouts=config.timeouts, metrics=metrics
        )
    else:
        driver = ConsensusDriver(node, peers, timeouts=config.timeouts, metrics=metrics)

    def consensus_status() -> dict[str, Any]:
        assert driver is not None
        return driver.status()

    app = create_app(
        node,
        max_body_bytes=config.api.max_body_bytes,
        metrics=metrics,
        consensus_status=consensus_status,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.api.host,
            port=config.api.port,
            log_level="warning",
            access_log=False,
            limit_concurrency=2_000,
            timeout_keep_alive=30,
            h11_max_incomplete_event_size=32 * 1024,
        )
    )
    _stop_on_signals(server)
    await peers.start()
    await driver.start()
    try:
        await server.serve()
    finally:
        await driver.stop()
        await peers.stop()


def _stop_on_signals(server: uvicorn.Server) -> None:
    """SIGINT and SIGTERM stop the node gracefully, at any time.

    While it serves, uvicorn catches both signals itself, and once its server has stopped
    it raises the caught signal again with the handler it found: with the default handler
    the process would die there, before the node closes its store and its verifier
    processes. So the handler it finds is this one, which asks the server to stop.
    """
    if threading.current_thread() is not threading.main_thread():
        return  # signals reach the main thread only (a node run inside tests)

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if not server.should_exit:
            log.info("%s received: stopping", signal.Signals(signum).name)
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, request_stop)


def run_node(config_path: Path) -> None:
    """Open the node described by ``config_path`` and serve until SIGINT/SIGTERM."""
    config = load_config(config_path)
    validator_key, node_key = load_keys(config)
    # Batches of signatures are checked by processes of their own, on every core.
    verifier = SignatureVerifier(config.verify_workers or None)
    node = open_node(config, validator_key, verifier)
    if config.byzantine:
        log.warning(
            "\n%s\nTHIS NODE IS BYZANTINE ([byzantine] mode = %r in %s): it breaks the "
            "consensus rules on purpose, for fault-injection tests only.\n%s",
            "!" * 78,
            config.byzantine,
            config_path,
            "!" * 78,
        )
    log.info(
        "node %s serving chain %s: API http://%s:%d, p2p %s:%d",
        config.name,
        node.chain_id,
        config.api.host,
        config.api.port,
        config.p2p.host,
        config.p2p.port,
    )
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(node, config, node_key))
    finally:
        node.close()
        verifier.close()
