"""Consensus messages: proposals and votes, signed by validators.

A vote signs ``DOMAIN_VOTE_SIGN || encode([chain_id, type, height, round, block_hash])``
where ``type`` is ``"prevote"`` or ``"precommit"`` and ``block_hash`` is empty for a nil
vote. A precommit for a block is exactly what a commit certificate holds, so the
precommits that decide a block become its ``Commit`` unchanged. A proposal signs
``DOMAIN_PROPOSAL_SIGN || encode([chain_id, height, round, block_hash, pol_round])``.
Specified in ``docs/spec/consensus.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from civicledger.chain.block import PRECOMMIT, Block, decode_block, vote_signing_bytes
from civicledger.chain.transaction import Transaction
from civicledger.crypto.keys import KeyPair, is_valid_signature
from civicledger.encoding import Value, encode
from civicledger.errors import DecodeError
from civicledger.types import Hash32, PublicKey, Signature, parse_public_key, parse_signature

__all__ = [
    "DOMAIN_PROPOSAL_SIGN",
    "NIL",
    "PRECOMMIT",
    "PREVOTE",
    "Proposal",
    "SignedProposal",
    "Vote",
    "proposal_signing_bytes",
    "vote_signing_bytes",
]

PREVOTE = "prevote"
#: The block hash of a nil vote.
NIL = Hash32(b"")
DOMAIN_PROPOSAL_SIGN = b"civic-ledger/proposal/v1\x00"
MAX_ROUND = 2**31


def proposal_signing_bytes(
    chain_id: str, height: int, round_: int, block_hash: bytes, pol_round: int
) -> bytes:
    # pol_round is -1 when there is no proof-of-lock round; encoded as a signed integer.
    return DOMAIN_PROPOSAL_SIGN + encode([chain_id, height, round_, block_hash, pol_round])


def _nonneg(value: Value, what: str, limit: int = 2**63 - 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise DecodeError(f"{what} must be an integer between 0 and {limit}")
    return value


@dataclass(frozen=True, slots=True)
class Vote:
    """A prevote or precommit of one validator for a block hash (or nil) at (height, round)."""

    type: str
    height: int
    round: int
    #: Hash of the block voted for; ``NIL`` (empty) for a nil vote.
    block_hash: Hash32
    validator: PublicKey
    signature: Signature

    @property
    def is_nil(self) -> bool:
        return not self.block_hash

    @classmethod
    def sign(
        cls,
        key: KeyPair,
        chain_id: str,
        vote_type: str,
        height: int,
        round_: int,
        block_hash: bytes,
    ) -> Vote:
        message = vote_signing_bytes(chain_id, height, round_, block_hash, vote_type)
        return cls(vote_type, height, round_, Hash32(block_hash), key.public_key, key.sign(message))

    def is_signature_valid(self, chain_id: str) -> bool:
        message = vote_signing_bytes(chain_id, self.height, self.round, self.block_hash, self.type)
        return is_valid_signature(self.validator, message, self.signature)

    def to_value(self) -> list[Value]:
        return [self.type, self.height, self.round, self.block_hash, self.validator, self.signature]

    @classmethod
    def from_value(cls, value: Value) -> Vote:
        if not isinstance(value, list) or len(value) != 6:
            raise DecodeError("a vote is a list of 6 items")
        vote_type, height, round_, block_hash, validator, signature = value
        if vote_type not in (PREVOTE, PRECOMMIT):
            raise DecodeError("vote type must be 'prevote' or 'precommit'")
        if not isinstance(block_hash, bytes) or len(block_hash) not in (0, 32):
            raise DecodeError("vote block hash must be 32 bytes or empty (nil)")
        if not isinstance(validator, bytes) or not isinstance(signature, bytes):
            raise DecodeError("vote validator and signature must be bytes")
        assert isinstance(vote_type, str)
        return cls(
            vote_type,
            _nonneg(height, "vote height"),
            _nonneg(round_, "vote round", MAX_ROUND),
            Hash32(block_hash),
            parse_public_key(validator),
            parse_signature(signature),
        )


@dataclass(frozen=True, slots=True)
class Proposal:
    """The proposer's block for (height, round), with its proof-of-lock round (or -1)."""

    height: int
    round: int
    block: Block
    pol_round: int
    proposer: PublicKey
    signature: Signature

    @property
    def block_hash(self) -> Hash32:
        return self.block.hash

    @classmethod
    def sign(
        cls, key: KeyPair, chain_id: str, height: int, round_: int, block: Block, pol_round: int
    ) -> Proposal:
        message = proposal_signing_bytes(chain_id, height, round_, block.hash, pol_round)
        return cls(height, round_, block, pol_round, key.public_key, key.sign(message))

    def is_signature_valid(self, chain_id: str) -> bool:
        message = proposal_signing_bytes(
            chain_id, self.height, self.round, self.block.hash, self.pol_round
        )
        return is_valid_signature(self.proposer, message, self.signature)

    def to_value(self) -> list[Value]:
        return [
            self.height,
            self.round,
            self.block.encoded,
            self.pol_round,
            self.proposer,
            self.signature,
        ]

    def signed(self) -> SignedProposal:
        """What the proposer signed, without the block: evidence of a double proposal."""
        return SignedProposal(
            self.height, self.round, self.block.hash, self.pol_round, self.proposer, self.signature
        )

    @classmethod
    def from_value(
        cls, value: Value, known: Callable[[Hash32], Transaction | None] | None = None
    ) -> Proposal:
        height, round_, block, pol_round, proposer, signature = _proposal_fields(value, "proposal")
        if not isinstance(block, bytes):
            raise DecodeError("proposal block must be bytes")
        return cls(height, round_, decode_block(block, known), pol_round, proposer, signature)


def _proposal_fields(value: Value, what: str) -> tuple[int, int, Value, int, PublicKey, Signature]:
    """The six items of a proposal or signed proposal, all but the third checked."""
    if not isinstance(value, list) or len(value) != 6:
        raise DecodeError(f"a {what} is a list of 6 items")
    height, round_, third, pol_round, proposer, signature = value
    if not isinstance(pol_round, int) or isinstance(pol_round, bool):
        raise DecodeError(f"{what} pol_round must be an integer")
    if not -1 <= pol_round < MAX_ROUND:
        raise DecodeError(f"{what} pol_round out of range")
    if not isinstance(proposer, bytes) or not isinstance(signature, bytes):
        raise DecodeError(f"{what} proposer and signature must be bytes")
    return (
        _nonneg(height, "proposal height"),
        _nonneg(round_, "proposal round", MAX_ROUND),
        third,
        pol_round,
        parse_public_key(proposer),
        parse_signature(signature),
    )


@dataclass(frozen=True, slots=True)
class SignedProposal:
    """A proposal's signed fields with the block's hash in place of the block: small, and
    enough to prove that a proposer signed two blocks for one height and round."""

    height: int
    round: int
    block_hash: Hash32
    pol_round: int
    proposer: PublicKey
    signature: Signature

    def is_signature_valid(self, chain_id: str) -> bool:
        message = proposal_signing_bytes(
            chain_id, self.height, self.round, self.block_hash, self.pol_round
        )
        return is_valid_signature(self.proposer, message, self.signature)

    def conflicts_with(self, other: SignedProposal) -> bool:
        """Both for one proposer, height and round, naming different blocks."""
        return (self.proposer, self.height, self.round) == (
            other.proposer,
            other.height,
            other.round,
        ) and self.block_hash != other.block_hash

    def to_value(self) -> list[Value]:
        return [
            self.height,
            self.round,
            self.block_hash,
            self.pol_round,
            self.proposer,
            self.signature,
        ]

    @classmethod
    def from_value(cls, value: Value) -> SignedProposal:
        height, round_, block_hash, pol_round, proposer, signature = _proposal_fields(
            value, "signed proposal"
        )
        if not isinstance(block_hash, bytes) or len(block_hash) != 32:
            raise DecodeError("signed proposal block hash must be 32 bytes")
        return cls(height, round_, Hash32(block_hash), pol_round, proposer, signature)
