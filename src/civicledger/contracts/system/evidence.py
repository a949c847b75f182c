"""Evidence of equivocation: two conflicting votes, or two conflicting proposals, signed
by one validator.

Any node that sees a validator sign two different votes for the same height, round and
vote type submits both here (``submit``); one that sees a proposer sign two different
blocks for the same height and round submits both signed proposals, without the blocks
(``submit_proposals``). The contract checks both signatures for this chain, so the
record is proof that anyone can re-check: ``evidence/<validator hex>/<height>/<round>/<type>``
(``type`` is ``prevote``, ``precommit`` or ``proposal``) → ``{"first", "second",
"reported_by", "reported_at"}`` (the two signed messages as encoded bytes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from civicledger.contracts.base import Args, Context, Contract, ViewContext, call, view
from civicledger.encoding import Value, decode
from civicledger.errors import ContractError, DecodeError

__all__ = ["PROPOSAL", "Evidence", "evidence_key"]

MAX_VOTE_BYTES = 512
T = TypeVar("T")
#: The ``type`` of evidence against a proposer that signed two blocks.
PROPOSAL = "proposal"


def _record(
    ctx: Context,
    validator: bytes,
    height: int,
    round_: int,
    kind: str,
    raw_first: bytes,
    raw_second: bytes,
) -> Value:
    """Store checked evidence once and announce it."""
    key = evidence_key(validator, height, round_, kind)
    ctx.require(not ctx.has(key), "this equivocation is already recorded", code="duplicate")
    ordered = sorted([raw_first, raw_second])
    ctx.set(
        key,
        {
            "first": ordered[0],
            "second": ordered[1],
            "reported_by": ctx.sender,
            "reported_at": ctx.height,
        },
    )
    ctx.emit("Equivocation", validator=validator, height=height, round=round_, type=kind)
    return key


def _pair(
    args: Args, from_value: Callable[[Value], T], what: str
) -> tuple[tuple[bytes, T], tuple[bytes, T]]:
    """The ``first`` and ``second`` arguments, each as its bytes and decoded."""
    raw = [args.blob_max(name, MAX_VOTE_BYTES) for name in ("first", "second")]
    args.check_no_extra()
    try:
        first, second = (from_value(decode(item)) for item in raw)
    except DecodeError as exc:
        raise ContractError(f"not {what}: {exc.message}", code="bad_argument") from None
    return (raw[0], first), (raw[1], second)


def evidence_key(validator: bytes, height: int, round_: int, vote_type: str) -> str:
    return f"evidence/{validator.hex()}/{height}/{round_}/{vote_type}"


class Evidence(Contract):
    name = "evidence"

    @call
    def submit(self, ctx: Context, args: Args) -> Value:
        """Record two conflicting signed votes of one validator."""
        from civicledger.consensus.bft.messages import Vote

        (raw_first, first), (raw_second, second) = _pair(args, Vote.from_value, "a vote")
        same_slot = (first.validator, first.height, first.round, first.type) == (
            second.validator,
            second.height,
            second.round,
            second.type,
        )
        ctx.require(same_slot, "the votes are not one validator's for one height, round, type")
        ctx.require(first.block_hash != second.block_hash, "the votes do not conflict")
        ctx.require(
            first.is_signature_valid(ctx.chain_id) and second.is_signature_valid(ctx.chain_id),
            "a vote's signature is invalid",
            code="invalid_signature",
        )
        return _record(
            ctx, first.validator, first.height, first.round, first.type, raw_first, raw_second
        )

    @call
    def submit_proposals(self, ctx: Context, args: Args) -> Value:
        """Record two signed proposals of one proposer for one height and round that name
        different blocks."""
        from civicledger.consensus.bft.messages import SignedProposal

        (raw_first, first), (raw_second, second) = _pair(
            args, SignedProposal.from_value, "a signed proposal"
        )
        ctx.require(
            first.conflicts_with(second),
            "the proposals are not one proposer's for one height and round, or do not conflict",
        )
        ctx.require(
            first.is_signature_valid(ctx.chain_id) and second.is_signature_valid(ctx.chain_id),
            "a proposal's signature is invalid",
            code="invalid_signature",
        )
        return _record(
            ctx, first.proposer, first.height, first.round, PROPOSAL, raw_first, raw_second
        )

    @view
    def get(self, ctx: ViewContext, args: Args) -> Value:
        """The recorded evidence of a validator at a height, round and vote type."""
        validator = args.blob("validator", size=32)
        height = args.integer("height", maximum=2**63 - 1)
        round_ = args.integer("round", maximum=2**31)
        vote_type = args.text("type", max_length=16)
        args.check_no_extra()
        record = ctx.get(evidence_key(validator, height, round_, vote_type))
        if record is None:
            raise ContractError("no such evidence", code="not_found")
        return record
