"""The consensus driver across a crash: a validator killed after signing its precommit but
before storing the decided block decides that same block after a restart, even when it
holds the quorum alone (its own votes of the height are kept with the record of its last
signature and counted again)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import VALIDATOR_KEY

from civicledger.chain.block import Block, Commit
from civicledger.chain.genesis import ConsensusParams, Genesis
from civicledger.consensus.bft.engine import STEP_PRECOMMIT, RecordSigned, TimeoutConfig
from civicledger.consensus.bft.messages import PRECOMMIT, PREVOTE
from civicledger.encoding import decode, encode
from civicledger.node.consensus import (
    ConsensusDriver,
    encode_signed_record,
    load_signed_record,
    load_signed_votes,
)
from civicledger.node.node import Node

FAST = TimeoutConfig(
    propose_ms=20,
    prevote_ms=20,
    precommit_ms=20,
    propose_delta_ms=10,
    prevote_delta_ms=10,
    precommit_delta_ms=10,
)


class Crash(Exception):
    """The process dies between deciding a block and storing it."""


class CrashBeforeCommit(ConsensusDriver):
    def _commit(self, block: Block, commit: Commit) -> None:
        raise Crash


async def _sign_then_crash(node: Node) -> None:
    driver = CrashBeforeCommit(node, None, timeouts=FAST)
    driver._loop = asyncio.get_running_loop()
    driver.running = True
    try:
        with pytest.raises(Crash):
            driver._start_height()
    finally:
        await driver.stop()


async def _run_until_committed(node: Node, timeout: float) -> None:
    committed = asyncio.Event()
    node.on_commit.append(lambda *_: committed.set())
    driver = ConsensusDriver(node, None, timeouts=FAST)
    await driver.start()
    try:
        await asyncio.wait_for(committed.wait(), timeout)
    finally:
        await driver.stop()


def test_driver_restarted_between_precommit_and_commit_decides_the_same_block(
    tmp_path: Path, make_genesis: Any
) -> None:
    genesis: Genesis = make_genesis(
        params=ConsensusParams(block_interval_ms=1, empty_block_interval_ms=1)
    )
    node = Node(tmp_path / "node", genesis, VALIDATOR_KEY)
    asyncio.run(_sign_then_crash(node))
    raw = node.signer_state.load()
    record = load_signed_record(raw)
    assert record is not None and record.locked_block is not None
    assert (record.height, record.step) == (1, STEP_PRECOMMIT)
    assert [v.type for v in load_signed_votes(raw)] == [PREVOTE, PRECOMMIT]
    assert node.head.height == 0
    node.close()

    restarted = Node(tmp_path / "node", genesis, VALIDATOR_KEY)
    try:
        asyncio.run(_run_until_committed(restarted, timeout=10))
        # It decided the block it had locked on, never another one.
        assert restarted.head.height >= 1
        assert restarted.get_header(1).hash == record.locked_block.hash
    finally:
        restarted.close()


def test_driver_reads_records_written_without_votes() -> None:
    record = RecordSigned(4, 1, STEP_PRECOMMIT)
    seven = encode(decode(encode_signed_record(record))[:7])  # type: ignore[index]
    assert load_signed_record(seven) == record
    assert load_signed_votes(seven) == []
