"""Running a node: the event loop, the clock, block production and the HTTP server.

Everything touching node state runs on one asyncio loop: API handlers and the block
producer. The producer wakes every ``block_interval_ms`` and proposes a block if
transactions wait (or, if configured, an empty block after ``empty_block_interval_ms``),
and wakes at once when a full block's worth of transactions is waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn
import uvloop

from civicledger.api.app import create_app
from civicledger.chain.genesis import load_genesis
from civicledger.crypto.keys import KeyPair
from civicledger.crypto.keystore import Keystore, resolve_passphrase
from civicledger.node.config import NodeConfig
from civicledger.node.node import Node

__all__ = ["BlockProducer", "open_node", "run_node", "wall_clock_ms"]

log = logging.getLogger(__name__)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def load_validator_key(config: NodeConfig) -> KeyPair | None:
    if not config.validator_key:
        return None
    passphrase_file = config.resolve(config.passphrase_file) if config.passphrase_file else None
    passphrase = resolve_passphrase(file=passphrase_file, prompt=True)
    return Keystore(config.resolve(config.keystore)).load(config.validator_key, passphrase)


def open_node(config: NodeConfig) -> Node:
    genesis = load_genesis(config.resolve(config.genesis))
    return Node(
        config.resolve(config.data_dir),
        genesis,
        load_validator_key(config),
        mempool_limits=config.mempool,
    )


class BlockProducer:
    """Decides when the node proposes its next block."""

    def __init__(self, node: Node, clock: Callable[[], int] = wall_clock_ms) -> None:
        self.node = node
        self.clock = clock
        self.wake = asyncio.Event()
        self.last_block_ms = clock()

    def is_due(self, now_ms: int) -> bool:
        params = self.node.genesis.params
        waiting = len(self.node.mempool)
        since = now_ms - self.last_block_ms
        if waiting >= params.max_block_txs:
            return True
        if waiting and since >= params.block_interval_ms:
            return True
        empty = params.empty_block_interval_ms
        return bool(empty) and since >= empty

    def step(self) -> None:
        now = self.clock()
        if self.node.is_proposer() and self.is_due(now):
            block = self.node.produce_block(now)
            if block is not None:
                self.last_block_ms = now
                log.info("committed block %d with %d txs", block.height, len(block.transactions))

    async def run(self) -> None:
        interval = self.node.genesis.params.block_interval_ms / 1000
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=min(interval, 0.1))
            self.wake.clear()
            self.step()
            # Let API handlers run between blocks.
            await asyncio.sleep(0)

    def notify(self) -> None:
        if len(self.node.mempool) >= self.node.genesis.params.max_block_txs:
            self.wake.set()


async def serve(node: Node, config: NodeConfig, ready: Callable[[], None] | None = None) -> None:
    app = create_app(node, max_body_bytes=config.api.max_body_bytes)
    producer = BlockProducer(node)
    app.state.producer = producer
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
    task = asyncio.create_task(producer.run())
    try:
        await server.serve()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def run_node(config_path: Path) -> None:
    """Open the node described by ``config_path`` and serve until SIGINT/SIGTERM."""
    from civicledger.node.config import load_config

    config = load_config(config_path)
    node = open_node(config)
    log.info(
        "node %s serving chain %s at http://%s:%d",
        config.name,
        node.chain_id,
        config.api.host,
        config.api.port,
    )
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(node, config))
    finally:
        node.close()
