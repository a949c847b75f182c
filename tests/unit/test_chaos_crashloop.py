"""The crash loop's durability check: what a node acknowledged must be in its database,
block for block and transaction for transaction; a loss or a change is reported."""

from __future__ import annotations

from collections.abc import Callable

from civicledger.chain.transaction import Transaction
from civicledger.chaos.crashloop import Acknowledged, CrashLoopReport, check_acknowledged
from civicledger.crypto.keys import KeyPair
from civicledger.node.node import Node

NOW_MS = 1_750_000_000_000


def _chain(
    node: Node, sign: Callable[..., Transaction], alice: KeyPair, bob: KeyPair
) -> Acknowledged:
    """Three blocks of two mints each, acknowledged as the node serves them."""
    acked = Acknowledged()
    nonce = 0
    for height in range(1, 4):
        for _ in range(2):
            node.submit(
                sign(alice, nonce, "accounts", "mint", {"to": bob.address, "amount": 1}).encoded
            )
            nonce += 1
        block = node.produce_block(NOW_MS + height)
        assert block is not None
        acked.on_block(0, height, block.hash, tuple(tx.tx_id for tx in block.transactions))
    return acked


def test_crashloop_check_passes_on_an_intact_store(
    node: Node, sign: Callable[..., Transaction], alice: KeyPair, bob: KeyPair
) -> None:
    acked = _chain(node, sign, alice, bob)
    assert acked.tx_count() == 6 and acked.served == {0: 3}
    assert check_acknowledged(node.store, acked, 3) == (0, [])


def test_crashloop_check_reports_a_lost_block_and_a_lost_transaction(
    node: Node, sign: Callable[..., Transaction], alice: KeyPair, bob: KeyPair
) -> None:
    acked = _chain(node, sign, alice, bob)
    # The node had served a fourth block that its database does not hold.
    acked.on_block(0, 4, bytes(32), (b"\x01" * 32,))
    lost, problems = check_acknowledged(node.store, acked, 4)
    assert lost == 1 and problems == ["acknowledged block 4 is missing"]
    # A transaction it had listed in block 2 is not there.
    block_hash, tx_ids = acked.blocks[2]
    acked.blocks[2] = (block_hash, (*tx_ids, b"\x02" * 32))
    lost, problems = check_acknowledged(node.store, acked, 3)
    assert lost == 1 and "block 2: 1 acknowledged transactions missing" in problems[0]


def test_crashloop_check_reports_a_changed_block_and_a_double_acknowledgement(
    node: Node, sign: Callable[..., Transaction], alice: KeyPair, bob: KeyPair
) -> None:
    acked = _chain(node, sign, alice, bob)
    _, first_ids = acked.blocks[1]
    acked.blocks[1] = (bytes(32), first_ids)
    acked.blocks[3] = (acked.blocks[3][0], (*acked.blocks[3][1], first_ids[0]))
    lost, problems = check_acknowledged(node.store, acked, 3)
    assert lost == 1  # not in block 3, where it was acknowledged
    assert "block 1 differs from the one acknowledged" in problems
    assert any("acknowledged twice" in p for p in problems)
    assert any("moved to block 1" in p for p in problems)


def test_crashloop_nodes_serving_different_blocks_is_a_problem() -> None:
    acked = Acknowledged()
    acked.on_block(0, 1, b"\x01" * 32, ())
    acked.on_block(1, 1, b"\x02" * 32, ())
    assert acked.problems == ["node1 served another block at height 1"]


def test_crashloop_report_is_ok_only_without_loss_or_problem() -> None:
    report = CrashLoopReport(seed=1, validators=1, kills=3)
    assert report.ok and report.to_json()["ok"] is True
    report.txs_lost = 1
    assert not report.ok
    report = CrashLoopReport(seed=1, validators=1, problems=["node0 refused to start"])
    assert not report.ok
