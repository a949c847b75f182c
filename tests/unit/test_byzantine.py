"""Byzantine validator modes: the invalid blocks an ``invalid-block`` validator proposes are
each refused by an honest node; the driver's faults (conflicting votes to different peers,
two valid proposals, invalid proposals) are what they claim, and a faulty node is not held
back by its record of its last signature."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from civicledger.chain.block import Validator, ValidatorSet
from civicledger.chain.genesis import Genesis
from civicledger.chain.transaction import Transaction
from civicledger.consensus.bft.engine import RecordSigned
from civicledger.consensus.bft.messages import NIL, PREVOTE, Proposal, Vote
from civicledger.crypto.keys import KeyPair
from civicledger.encoding import encode
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
    received = {
        peer: [Proposal.from_value(v) for v in values]
        for peer, values in fake.received("proposal").items()
    }
    proposals = {p.block_hash: p for values in received.values() for p in values}
    assert len(proposals) == 2
    # Some peers get one proposal, the others the other, and one gets both (it can
    # report the double proposal).
    seen = [{p.block_hash for p in values} for values in received.values()]
    assert sorted(len(hashes) for hashes in seen) == [1, 1, 2]
    assert len({h for hashes in seen if len(hashes) == 1 for h in hashes}) == 2
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


OTHER_VALIDATOR = KeyPair.from_seed(b"o" * 32)


@pytest.fixture
def two_validator_node(tmp_path: Path, genesis: Genesis, validator_key: KeyPair) -> Iterator[Node]:
    """A node whose validator holds 3 of 4 votes (it decides alone); another holds 1."""
    validators = ValidatorSet.of(
        [Validator(validator_key.public_key, 3), Validator(OTHER_VALIDATOR.public_key, 1)]
    )
    node = Node(
        tmp_path / "two", dataclasses.replace(genesis, validators=validators), validator_key
    )
    try:
        yield node
    finally:
        node.close()


def test_a_double_proposal_is_reported_by_an_honest_node_and_false_ones_cost_the_link(
    two_validator_node: Node, validator_key: KeyPair
) -> None:
    node, other_validator = two_validator_node, OTHER_VALIDATOR
    first = Proposal.sign(other_validator, node.chain_id, 1, 0, node.build_block(NOW_MS), -1)
    second = Proposal.sign(other_validator, node.chain_id, 1, 0, node.build_block(NOW_MS + 1), -1)
    assert first.block_hash != second.block_hash
    fake = FakePeers(2)
    honest = ConsensusDriver(node, fake)  # type: ignore[arg-type]
    peer = next(iter(fake.peers.values()))
    payload = ["proposals", first.signed().to_value(), second.signed().to_value()]
    # One proposal twice is no evidence: the peer that sent it is cut off.
    disconnected: list[str] = []
    fake.disconnect = lambda p, reason: disconnected.append(reason)  # type: ignore[attr-defined]
    same = ["proposals", first.signed().to_value(), first.signed().to_value()]
    honest._on_evidence(peer, same)  # type: ignore[arg-type]
    assert disconnected == ["sent false evidence"] and len(node.mempool) == 0
    honest._on_evidence(peer, payload)  # type: ignore[arg-type]
    honest._on_evidence(peer, payload)  # type: ignore[arg-type]
    assert len(node.mempool) == 1  # reported once
    block = node.produce_block(NOW_MS + 5)
    assert block is not None
    (receipt,) = [r for r in node.get_receipts(block.height) if r.events]
    assert receipt.ok and receipt.events[0].data["type"] == "proposal"
    record = node.query(
        "evidence",
        "get",
        {"validator": other_validator.public_key, "height": 1, "round": 0, "type": "proposal"},
    )
    assert {record["first"], record["second"]} == {
        encode(first.signed().to_value()),
        encode(second.signed().to_value()),
    }
    # The byzantine proposer never reports itself.
    driver, fake = _driver(node, "double-propose")
    own = [
        Proposal.sign(validator_key, node.chain_id, 2, 0, node.build_block(t), -1).signed()
        for t in (NOW_MS + 9, NOW_MS + 10)
    ]
    driver._on_double_proposal(own[0], own[1])
    driver._on_evidence(peer, ["proposals", own[0].to_value(), own[1].to_value()])  # type: ignore[arg-type]
    assert len(node.mempool) == 0 and not fake.received("evidence")[peer.key]
