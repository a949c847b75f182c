"""Validator-set handoffs: proof that the validators changed, signed by those before.

The state after block ``h`` names the validators of block ``h + 1`` (``$sys/validators``).
When governance changes them, block ``h`` is a *handoff*: its header is signed (commit
certificate) by the set that signs ``h``, and a state proof against that header's state
root shows the set that signs ``h + 1``. A client that trusts the genesis validators
follows the handoffs below a height, in order, to learn which set must have signed a
block at that height, without trusting the node that served them. Specified in
``docs/spec/consensus.md`` section 15.1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from civicledger.chain.block import Commit, Header, ValidatorSet, decode_commit, decode_header
from civicledger.encoding import Value, decode, encode
from civicledger.errors import DecodeError, InvalidBlock, InvalidProof, LedgerError
from civicledger.state.smt import StateProof, verify_proof
from civicledger.state.system import VALIDATORS_KEY
from civicledger.types import parse_hex

__all__ = [
    "MAX_HANDOFFS",
    "Handoff",
    "follow_handoffs",
    "handoffs_from_json",
    "handoffs_to_json",
    "trusted_signers",
]

#: At most this many handoffs are served, or followed, at once.
MAX_HANDOFFS = 1_000


@dataclass(frozen=True, slots=True)
class Handoff:
    """Block ``header.height``, certified by ``commit`` of ``signers``, after which
    ``proof`` (against the header's state root) names the next validator set."""

    header: Header
    commit: Commit
    signers: ValidatorSet
    proof: StateProof

    @property
    def height(self) -> int:
        return self.header.height

    def next_validators(self) -> ValidatorSet:
        """The set the proof names (not yet checked: see ``follow_handoffs``)."""
        if self.proof.value is None:
            raise InvalidProof(f"the handoff at height {self.height} proves no validator set")
        return ValidatorSet.from_value(decode(self.proof.value))

    def to_value(self) -> list[Value]:
        return [
            self.header.encoded,
            self.commit.encoded,
            self.signers.to_value(),
            self.proof.to_value(),
        ]

    @classmethod
    def from_value(cls, value: Value) -> Handoff:
        if not isinstance(value, list) or len(value) != 4:
            raise DecodeError("a handoff is a list of 4 items")
        header, commit, signers, proof = value
        if not isinstance(header, bytes) or not isinstance(commit, bytes):
            raise DecodeError("a handoff's header and commit are encodings (bytes)")
        return cls(
            decode_header(header),
            decode_commit(commit),
            ValidatorSet.from_value(signers),
            StateProof.from_value(proof),
        )

    def encoded(self) -> bytes:
        return encode(self.to_value())


def follow_handoffs(
    chain_id: str, trusted: ValidatorSet, handoffs: Sequence[Handoff], height: int
) -> ValidatorSet:
    """The validator set that signs block ``height``, starting from ``trusted`` (the set
    that signs block 1: the genesis validators) and following, in height order, every
    handoff below ``height``. Raises ``InvalidProof`` naming the first link that fails.

    A handoff left out in the middle is caught (the next one is signed by a set the
    walk does not reach). Handoffs left out at the end are not: a proof then rests on a
    set that governance has since replaced. That is sound only while replaced validators
    never sign blocks outside their term (their keys stay secure after retirement), the
    assumption of every light client without a trusting period.
    """
    if len(handoffs) > MAX_HANDOFFS:
        raise InvalidProof(f"more than {MAX_HANDOFFS} handoffs")
    current = trusted
    previous = 0
    for handoff in handoffs:
        h = handoff.height
        if h >= height:
            break
        if h <= previous:
            raise InvalidProof("handoffs must be in increasing height order")
        try:
            if handoff.header.chain_id != chain_id:
                raise InvalidProof(f"the handoff at height {h} is for another chain")
            if handoff.signers.hash != current.hash:
                raise InvalidProof(
                    f"the handoff at height {h} is signed by a validator set that the "
                    "handoffs before it do not lead to (one is missing or forged)"
                )
            handoff.commit.validate(chain_id, handoff.header, handoff.signers)
            if handoff.proof.key != VALIDATORS_KEY:
                raise InvalidProof(f"the handoff at height {h} proves another key")
            verify_proof(handoff.header.state_root, handoff.proof)
            current = handoff.next_validators()
        except InvalidProof:
            raise
        except (InvalidBlock, LedgerError) as exc:
            raise InvalidProof(f"the handoff at height {h}: {exc.message}") from None
        previous = h
    return current


def handoffs_to_json(handoffs: Sequence[Handoff]) -> list[str]:
    """A proof file's ``handoffs``: each handoff's encoding in hex."""
    return [h.encoded().hex() for h in handoffs]


def handoffs_from_json(obj: dict[str, Any]) -> tuple[Handoff, ...]:
    """The ``handoffs`` of a proof file (absent: none)."""
    items = obj.get("handoffs") or []
    if not isinstance(items, list) or len(items) > MAX_HANDOFFS:
        raise DecodeError(f"'handoffs' must be a list of at most {MAX_HANDOFFS} hex strings")
    return tuple(Handoff.from_value(decode(parse_hex(item, what="handoff"))) for item in items)


def trusted_signers(
    header: Header,
    signers: ValidatorSet,
    trusted: ValidatorSet | None,
    handoffs: Sequence[Handoff],
) -> None:
    """Raise ``InvalidProof`` unless ``signers`` is the set that ``trusted`` (the genesis
    validators, if given) leads to at ``header``'s height through ``handoffs``."""
    if trusted is None:
        return
    expected = follow_handoffs(header.chain_id, trusted, handoffs, header.height)
    if signers.hash != expected.hash:
        raise InvalidProof(
            "the block was signed by a validator set you do not trust"
            + ("" if handoffs else " (no validator-set handoffs came with the proof)")
        )
