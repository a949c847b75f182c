"""Deliberately faulty validators, for fault-injection tests only.

A node whose ``config.toml`` has ``[byzantine] mode = "..."`` runs ``ByzantineDriver``
instead of the honest ``ConsensusDriver``. The engine (``consensus/bft/engine.py``) stays
honest: the faults are committed here, in the shell, on the messages the engine asks the
node to send, the way a validator running modified software would commit them:

``double-sign``
    Every vote the engine signs is doubled by a conflicting one for the same height,
    round and type: a vote for a block is matched by a vote for nil, a vote for nil by a
    vote for a block nobody proposed. Half of the peers get one vote, the other half the
    other one, and one peer (a different one at each height) gets both. Peers do not
    relay votes, so that peer is the one that can see the equivocation and report it to
    the ``evidence`` contract, as it would in a real network where some honest node ends
    up with both.
``double-propose``
    As proposer, a second valid block for the same height and round (same transactions,
    a later time) is signed too; some peers get the first proposal, the others the second,
    and one peer gets both (it reports the double proposal as evidence).
``invalid-block``
    As proposer, peers get a correctly signed proposal of a block that honest validators
    must refuse: a wrong state root, a transaction with a broken signature, a wrong
    height, a wrong parent, a time far in the future, a wrong transactions root, or a
    proposer that is not a validator (one of these in turn, so that a run of seven
    invalid proposals tries them all).

Such a node also ignores its own record of its last signature on restart (so a restart
does not stop it signing again at the same height and round), and never reports
evidence against itself. It logs a warning at start and at every fault.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from civicledger.chain.block import Block, compute_tx_root
from civicledger.consensus.bft.engine import RecordSigned, TimeoutConfig
from civicledger.consensus.bft.messages import NIL, Proposal, SignedProposal, Vote
from civicledger.crypto.hashing import sha256
from civicledger.crypto.keys import KeyPair
from civicledger.encoding import Value
from civicledger.metrics import Metrics
from civicledger.node.config import BYZANTINE_MODES
from civicledger.node.consensus import ConsensusDriver, wall_clock_ms
from civicledger.node.node import Node
from civicledger.p2p.peers import Peer, PeerManager
from civicledger.types import Address, Hash32, Signature

__all__ = ["INVALID_BLOCK_KINDS", "ByzantineDriver", "compute_invalid_block"]

log = logging.getLogger(__name__)

#: The ways an ``invalid-block`` proposer breaks its block, used in turn.
INVALID_BLOCK_KINDS = (
    "state-root",
    "tx-signature",
    "height",
    "parent",
    "future-time",
    "tx-root",
    "proposer",
)

#: How far in the future a ``future-time`` block claims to be (beyond any clock drift).
_FUTURE_MS = 24 * 3600 * 1000


def compute_invalid_block(block: Block, kind: str) -> Block:
    """``block`` broken in the way ``kind`` names (one of ``INVALID_BLOCK_KINDS``).

    A block without transactions has no signature to break: ``tx-signature`` then breaks
    the state root instead.
    """
    header = block.header
    garbage = Hash32(sha256(b"byzantine " + kind.encode() + header.encoded))
    if kind == "tx-signature" and block.transactions:
        first = block.transactions[0]
        broken = bytes([first.signature[0] ^ 0xFF]) + first.signature[1:]
        # The cached encoding and id must not survive the change.
        tampered = dataclasses.replace(
            first, signature=Signature(broken), _encoded=b"", _tx_id=b"", _sender_address=b""
        )
        txs = (tampered, *block.transactions[1:])
        # The transactions root names the tampered transaction: only its signature is bad.
        return Block(dataclasses.replace(header, tx_root=compute_tx_root(txs)), txs)
    changes: dict[str, object]
    if kind in ("state-root", "tx-signature"):
        changes = {"state_root": garbage}
    elif kind == "height":
        changes = {"height": header.height + 1}
    elif kind == "parent":
        changes = {"prev_hash": garbage}
    elif kind == "future-time":
        changes = {"time_ms": header.time_ms + _FUTURE_MS}
    elif kind == "tx-root":
        changes = {"tx_root": garbage}
    elif kind == "proposer":
        changes = {"proposer": Address(garbage[:20])}
    else:
        raise ValueError(f"unknown kind of invalid block {kind!r}")
    return Block(dataclasses.replace(header, **changes), block.transactions)  # type: ignore[arg-type]


class ByzantineDriver(ConsensusDriver):
    """The consensus shell of a validator that misbehaves on purpose (see the module)."""

    def __init__(
        self,
        node: Node,
        peers: PeerManager | None,
        mode: str,
        *,
        timeouts: TimeoutConfig | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        if mode not in BYZANTINE_MODES:
            raise ValueError(f"unknown byzantine mode {mode!r}")
        if node.validator_key is None:
            raise ValueError("a byzantine node needs a validator key")
        self.mode = mode
        self.key: KeyPair = node.validator_key
        self._invalid_proposals = 0
        super().__init__(node, peers, timeouts=timeouts, metrics=metrics, clock=clock)
        log.warning(
            "BYZANTINE NODE: this validator misbehaves on purpose (%s), for fault-injection "
            "tests only; never run it in a real network",
            mode,
        )

    # -- hooks of the honest driver ------------------------------------------------

    def _load_signed(self) -> tuple[RecordSigned | None, list[Vote]]:
        # A faulty validator does not hold itself to its past signatures.
        return None, []

    def _broadcast_own(self, message: Proposal | Vote) -> None:
        if self.mode == "double-sign" and isinstance(message, Vote):
            self._double_sign(message)
        elif self.mode == "double-propose" and isinstance(message, Proposal):
            self._double_propose(message)
        elif self.mode == "invalid-block" and isinstance(message, Proposal):
            self._propose_invalid(message)
        else:
            super()._broadcast_own(message)

    def _on_evidence(self, peer: Peer, payload: Value) -> None:
        if isinstance(payload, list) and len(payload) in (2, 3):
            offender = (
                Vote.from_value(payload[0]).validator
                if len(payload) == 2
                else SignedProposal.from_value(payload[1]).proposer
            )
            if offender == self.key.public_key:
                return  # never report ourselves
        super()._on_evidence(peer, payload)

    def _on_double_proposal(self, first: SignedProposal, second: SignedProposal) -> None:
        if first.proposer != self.key.public_key:  # our own engine sees both of ours
            super()._on_double_proposal(first, second)

    # -- faults --------------------------------------------------------------------

    def _split_peers(self) -> tuple[list[Peer], list[Peer], Peer | None]:
        """Two halves of the peers, and a peer of the second half that gets both
        messages; who is in which half turns with the height."""
        if self.peers is None or not self.peers.peers:
            return [], [], None
        peers = sorted(self.peers.peers.values(), key=lambda p: p.key)
        turn = self.engine.height % len(peers)
        peers = peers[turn:] + peers[:turn]
        half = len(peers) // 2
        return peers[:half], peers[half:], peers[-1]

    def _send(self, peers: list[Peer], kind: str, message: Proposal | Vote) -> None:
        assert self.peers is not None
        value = message.to_value()
        for peer in peers:
            self.peers.send(peer, kind, value)

    def _double_sign(self, vote: Vote) -> None:
        other = NIL if not vote.is_nil else Hash32(sha256(b"byzantine vote " + vote.signature))
        conflicting = Vote.sign(
            self.key, self.node.chain_id, vote.type, vote.height, vote.round, other
        )
        self.metrics.inc("byzantine_faults_total", kind="double_sign")
        log.warning(
            "BYZANTINE: signed two %ss at height %d round %d", vote.type, vote.height, vote.round
        )
        # Both are re-sent to everyone with our other votes (repairing lost messages).
        self._own_messages += [vote, conflicting]
        first, second, witness = self._split_peers()
        if witness is None:
            return
        self._send(first, "vote", vote)
        self._send(second, "vote", conflicting)
        self._send([witness], "vote", vote)

    def _double_propose(self, proposal: Proposal) -> None:
        block = proposal.block
        # The same transactions a millisecond later: as valid, but a different block.
        other = self.node.build_block(block.header.time_ms + 1, proposal.round)
        second = Proposal.sign(
            self.key,
            self.node.chain_id,
            proposal.height,
            proposal.round,
            other,
            proposal.pol_round,
        )
        self.metrics.inc("byzantine_faults_total", kind="double_propose")
        log.warning(
            "BYZANTINE: proposed two blocks at height %d round %d: %s and %s",
            proposal.height,
            proposal.round,
            block.hash.hex()[:8],
            other.hash.hex()[:8],
        )
        self._own_messages.append(proposal)
        first_half, second_half, both = self._split_peers()
        self._send(first_half, "proposal", proposal)
        self._send(second_half, "proposal", second)
        # One peer gets both, as some honest node would in a real network: it can
        # report the double proposal.
        if both is not None:
            self._send([both], "proposal", proposal)
        # Our own engine learns of the second block too, so it can follow a quorum for
        # either; fed after the current effects are carried out.
        assert self._loop is not None
        self._loop.call_soon(self._feed_own, second)

    def _feed_own(self, proposal: Proposal) -> None:
        if self.running and proposal.height == self.node.next_height:
            self._execute(self.engine.on_proposal(proposal))

    def _propose_invalid(self, proposal: Proposal) -> None:
        kind = INVALID_BLOCK_KINDS[self._invalid_proposals % len(INVALID_BLOCK_KINDS)]
        self._invalid_proposals += 1
        block = compute_invalid_block(proposal.block, kind)
        invalid = Proposal.sign(
            self.key,
            self.node.chain_id,
            proposal.height,
            proposal.round,
            block,
            proposal.pol_round,
        )
        self.metrics.inc("byzantine_faults_total", kind="invalid_block")
        log.warning(
            "BYZANTINE: proposed an invalid block (%s) at height %d round %d",
            kind,
            proposal.height,
            proposal.round,
        )
        # Peers that connect later get the invalid proposal as well.
        self._own_messages.append(invalid)
        if self.peers is not None:
            self.peers.broadcast("proposal", invalid.to_value())
