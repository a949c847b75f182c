"""Node.validate_block: what a validator checks before voting for a proposed block."""

from __future__ import annotations

import dataclasses

import pytest

from civicledger.chain.block import Block
from civicledger.consensus.bft.messages import PREVOTE, Vote
from civicledger.encoding import encode
from civicledger.errors import InvalidBlock


def _proposal(node, sign, alice, now):
    tx = sign(alice, 0, "accounts", "mint", {"to": alice.address, "amount": 5})
    node.submit(tx.encoded)
    return node.build_block(now)


def _with(block: Block, **changes) -> Block:
    return Block(dataclasses.replace(block.header, **changes), block.transactions)


def test_a_proposed_block_validates_and_commits(node, sign, alice):
    now = node.head.time_ms + 1_000
    block = _proposal(node, sign, alice, now)
    node.validate_block(block, now)
    assert node.is_valid_block(block, now)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"chain_id": "other"}, "chain"),
        ({"height": 7}, "height"),
        ({"prev_hash": b"\x01" * 32}, "does not extend"),
        ({"time_ms": 0}, "not later"),
        ({"proposer": b"\x02" * 20}, "non-validator"),
        ({"validator_set_hash": b"\x03" * 32}, "validator set"),
        ({"tx_root": b"\x04" * 32}, "tx root"),
        ({"state_root": b"\x05" * 32}, "state root"),
        ({"receipts_root": b"\x06" * 32}, "receipts root"),
    ],
)
def test_each_header_lie_is_refused(node, sign, alice, change, message):
    now = node.head.time_ms + 1_000
    block = _proposal(node, sign, alice, now)
    with pytest.raises(InvalidBlock, match=message):
        node.validate_block(_with(block, **change), now)
    # The node is unharmed: the honest block still validates, and until it is committed
    # the committed state is what it was.
    node.validate_block(block, now)
    assert node.state.root() == block.header.state_root
    assert node.get_nonce(alice.address) == 0


def test_a_block_from_the_future_is_refused(node, sign, alice):
    now = node.head.time_ms + 1_000
    block = _proposal(node, sign, alice, now)
    drift = node.genesis.params.max_clock_drift_ms
    with pytest.raises(InvalidBlock, match="future"):
        node.validate_block(_with(block, time_ms=now + drift + 1), now)


def test_evidence_of_a_double_vote_is_recorded_once(node, sign, alice, validator_key):
    first = Vote.sign(validator_key, node.chain_id, PREVOTE, 5, 0, b"\x01" * 32)
    second = Vote.sign(validator_key, node.chain_id, PREVOTE, 5, 0, b"\x02" * 32)
    args = {"first": encode(first.to_value()), "second": encode(second.to_value())}
    node.submit(sign(alice, 0, "evidence", "submit", args).encoded)
    node.submit(sign(alice, 1, "evidence", "submit", args).encoded)
    same = {"first": encode(first.to_value()), "second": encode(first.to_value())}
    node.submit(sign(alice, 2, "evidence", "submit", same).encoded)
    forged = dataclasses.replace(second, signature=b"\x00" * 64)
    bad = {"first": encode(first.to_value()), "second": encode(forged.to_value())}
    node.submit(sign(alice, 3, "evidence", "submit", bad).encoded)
    block = node.produce_block(node.head.time_ms + 1_000)
    assert block is not None
    codes = [r.error_code for r in node.get_receipts(block.height)]
    assert codes == ["", "duplicate", "requirement_failed", "invalid_signature"]
    record = node.query(
        "evidence",
        "get",
        {"validator": validator_key.public_key, "height": 5, "round": 0, "type": PREVOTE},
    )
    assert record["reported_by"] == alice.address
    assert {record["first"], record["second"]} == set(args.values())
