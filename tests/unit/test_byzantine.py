"""Byzantine validator modes: the invalid blocks an ``invalid-block`` validator proposes are
each refused by an honest node; the driver's faults (conflicting votes to different peers,
two valid proposals, invalid proposals) are what they claim, and a faulty node is not held
back by its record of its last signature."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from civicledger.chain.transaction import Transaction
from civicledger.consensus.bft.engine import RecordSigned
from civicledger.consensus.bft.messages import NIL, PREVOTE, Proposal, Vote
from civicledger.crypto.keys import KeyPair
from civicledger.errors import InvalidBlock
from civicledger.node.byzantine import INVALID_BLOCK_KINDS, ByzantineDriver, compute_invalid_block
from civicledger.node.consensus import ConsensusDriver, encode_signed_record
from civicledger.node.node import Node
from civicledger.types import Hash32

NOW_MS = 1_750_000_000_000

REASONS = {
    "state-root": "state root",
    "tx-signature": "is not signed",
    "height": "is for height",
    "parent": "does not extend",
    "future-time": "in the future",
    "tx-root": "tx root",
    "proposer": "non-validator",
}


@pytest.mark.parametrize("kind", INVALID_BLOCK_KINDS)
def test_byzantine_invalid_block_is_refused(
    node: Node, sign: Callable[..., Transaction], alice: KeyPair, bob: KeyPair, kind: str
) -> None:
    tx = sign(alice, 0, "accounts", "mint", {"to": bob.address, "amount": 5})
    node.submit(tx.encoded)
    block = node.build_block(NOW_MS)
    assert len(block.transactions) == 1
    invalid = compute_invalid_block(block, kind)
    assert invalid.hash != block.hash
    with pytest.raises(InvalidBlock, match=REASONS[kind]):
        node.validate_block(invalid, NOW_MS)
    # The block it was made from is still good.
    node.validate_block(block, NOW_MS)


def test_byzantine_every_kind_has_a_reason() -> None:
    assert set(REASONS) == set(INVALID_BLOCK_KINDS)


def test_byzantine_empty_block_with_broken_signature_breaks_the_state_root(node: Node) -> None:
    block = node.build_block(NOW_MS)
    with pytest.raises(InvalidBlock, match="state root"):
        node.validate_block(compute_invalid_block(block, "tx-signature"), NOW_MS)


# -- the driver, against a fake peer manager ------------------------------------------


class FakePeer:
    def __init__(self, index: int) -> None:
        self.key = bytes([index]) * 32
        self.name = f"peer{index}"


class FakePeers:
    """Records what the driver sends to whom."""

    def __init__(self, count: int) -> None:
        self.peers = {p.key: p for p in (FakePeer(i) for i in range(count))}
        self.sent: list[tuple[bytes, str, Any]] = []

    def send(self, peer: FakePeer, kind: str, value: Any) -> bool:
        self.sent.append((peer.key, kind, value))
        return True

    def broadcast(self, kind: str, value: Any, *, exclude: Any = None) -> int:
        for peer in self.peers.values():
            self.send(peer, kind, value)
        return len(self.peers)

    def received(self, kind: str) -> dict[bytes, list[Any]]:
        out: dict[bytes, list[Any]] = {key: [] for key in self.peers}
        for key, sent_kind, value in self.sent:
            if sent_kind == kind:
                out[key].append(value)
        return out


def _driver(node: Node, mode: str, peers: int = 3) -> tuple[ByzantineDriver, FakePeers]:
    fake = FakePeers(peers)
    return ByzantineDriver(node, fake, mode), fake  # type: ignore[arg-type]


@pytest.mark.parametrize("block_hash", [NIL, Hash32(b"\x07" * 32)])
def test_byzantine_double_sign_sends_conflicting_votes_to_different_peers(
    node: Node, validator_key: KeyPair, block_hash: Hash32
) -> None:
    driver, fake = _driver(node, "double-sign")
    vote = Vote.sign(validator_key, node.chain_id, PREVOTE, 1, 0, block_hash)
    driver._broadcast_own(vote)
    received = {
        key: {Vote.from_value(v) for v in values} for key, values in fake.received("vote").items()
    }
    votes = set().union(*received.values())
    assert len(votes) == 2 and vote in votes
    (other,) = votes - {vote}
    # A real equivocation: same validator, height, round and type, another block.
    assert (other.validator, other.height, other.round, other.type) == (
        vote.validator,
        vote.height,
        vote.round,
        vote.type,
    )
    assert other.block_hash != vote.block_hash
    assert other.is_nil != vote.is_nil
    assert other.is_signature_valid(node.chain_id)
    # Some peers see one vote, some the other, and one sees both (and can report it).
    assert any(r == {vote} for r in received.values())
    assert any(r == {other} for r in received.values())
    assert any(r == {vote, other} for r in received.values())


def test_byzantine_node_ignores_its_record_of_the_last_signature(node: Node) -> None:
    node.signer_state.save(encode_signed_record(RecordSigned(9, 3, 3)))
    assert ConsensusDriver(node, None).engine.last_signed == (9, 3, 3)
    driver, _ = _driver(node, "double-sign")
    assert driver.engine.last_signed == (0, -1, 0)


def test_byzantine_node_does_not_report_itself(node: Node, validator_key: KeyPair) -> None:
    votes = [
        Vote.sign(validator_key, node.chain_id, PREVOTE, 1, 0, h).to_value()
        for h in (NIL, Hash32(b"\x01" * 32))
    ]
    driver, fake = _driver(node, "double-sign")
    peer = next(iter(fake.peers.values()))
    driver._on_evidence(peer, votes)  # type: ignore[arg-type]
    assert len(node.mempool) == 0
    # An honest node does report it.
    ConsensusDriver(node, fake)._on_evidence(peer, votes)  # type: ignore[arg-type]
    assert len(node.mempool) == 1


def test_byzantine_double_propose_sends_two_valid_blocks(
    node: Node, sign: Callable[..., Transaction], alice: KeyPair, bob: KeyPair
) -> None:
    node.submit(sign(alice, 0, "accounts", "mint", {"to": bob.address, "amount": 5}).encoded)
    driver, fake = _driver(node, "double-propose")
    loop = asyncio.new_event_loop()
    driver._loop = loop
    try:
        key = node.validator_key
        assert key is not None
        proposal = Proposal.sign(key, node.chain_id, 1, 0, node.build_block(NOW_MS), -1)
        driver._broadcast_own(proposal)
    finally:
        loop.close()
    received = fake.received("proposal")
    proposals = {
        Proposal.from_value(v[0]).block_hash: Proposal.from_value(v[0]) for v in received.values()
    }
    assert all(len(v) == 1 for v in received.values())
    assert len(proposals) == 2
    for other in proposals.values():
        assert (other.height, other.round) == (1, 0)
        assert other.is_signature_valid(node.chain_id)
        assert len(other.block.transactions) == 1
        node.validate_block(other.block, NOW_MS + 10)


def test_byzantine_invalid_block_proposals_try_every_kind(
    node: Node, sign: Callable[..., Transaction], alice: KeyPair, bob: KeyPair
) -> None:
    node.submit(sign(alice, 0, "accounts", "mint", {"to": bob.address, "amount": 5}).encoded)
    driver, fake = _driver(node, "invalid-block", peers=1)
    key = node.validator_key
    assert key is not None
    for round_ in range(len(INVALID_BLOCK_KINDS)):
        block = node.build_block(NOW_MS + round_)
        driver._broadcast_own(Proposal.sign(key, node.chain_id, 1, round_, block, -1))
    (sent,) = fake.received("proposal").values()
    assert len(sent) == len(INVALID_BLOCK_KINDS)
    for value, kind in zip(sent, INVALID_BLOCK_KINDS, strict=True):
        proposal = Proposal.from_value(value)
        assert proposal.is_signature_valid(node.chain_id)
        with pytest.raises(InvalidBlock, match=REASONS[kind]):
            node.validate_block(proposal.block, NOW_MS + 100)
