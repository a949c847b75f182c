"""State proofs anyone can check offline: a key's value (or absence) at a certified block.

A ``StateProofBundle`` holds a contract state key, its value (``None`` when absent), the
sparse Merkle proof against the block's state root (``state.smt``), the block header, its
commit certificate and the validator set that signed it. ``verify_state_bundle`` checks
every link and raises ``InvalidProof`` naming the first that fails. Format in
``docs/spec/state.md`` ("State proof bundles").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from civicledger.chain.block import Commit, Header, ValidatorSet
from civicledger.chain.handoff import (
    Handoff,
    handoffs_from_json,
    handoffs_to_json,
    trusted_signers,
)
from civicledger.encoding import decode, encode
from civicledger.errors import DecodeError, InvalidBlock, InvalidProof
from civicledger.state.smt import StateProof, verify_proof
from civicledger.types import parse_hex

__all__ = ["STATE_PROOF_FORMAT", "StateProofBundle", "verify_state_bundle"]

STATE_PROOF_FORMAT = "civic-ledger/state-proof/v1"


def contract_state_key(contract: str, key: str) -> bytes:
    return f"{contract}/{key}".encode()


@dataclass(frozen=True, slots=True)
class StateProofBundle:
    contract: str
    key: str
    proof: StateProof
    header: Header
    commit: Commit
    validators: ValidatorSet
    #: The validator-set handoffs below the block (``chain/handoff.py``).
    handoffs: tuple[Handoff, ...] = ()

    def to_json(self) -> dict[str, Any]:
        value = self.proof.value
        return {
            "format": STATE_PROOF_FORMAT,
            "contract": self.contract,
            "key": self.key,
            "height": self.header.height,
            "present": value is not None,
            "value": None if value is None else value.hex(),
            "proof": encode(self.proof.to_value()).hex(),
            "header": self.header.encoded.hex(),
            "commit": self.commit.encoded.hex(),
            "validators": encode(self.validators.to_value()).hex(),
        } | ({"handoffs": handoffs_to_json(self.handoffs)} if self.handoffs else {})

    @classmethod
    def from_json(cls, obj: Any) -> StateProofBundle:
        if not isinstance(obj, dict) or obj.get("format") != STATE_PROOF_FORMAT:
            raise DecodeError(f"not a state proof (expected format {STATE_PROOF_FORMAT!r})")
        for name in ("contract", "key"):
            if not isinstance(obj.get(name), str):
                raise DecodeError(f"state proof lacks {name!r}")

        def field(name: str) -> bytes:
            if not isinstance(obj.get(name), str):
                raise DecodeError(f"state proof lacks {name!r}")
            return parse_hex(obj[name], what=name)

        bundle = cls(
            contract=obj["contract"],
            key=obj["key"],
            proof=StateProof.from_value(decode(field("proof"))),
            header=Header.from_value(decode(field("header"))),
            commit=Commit.from_value(decode(field("commit"))),
            validators=ValidatorSet.from_value(decode(field("validators"))),
            handoffs=handoffs_from_json(obj),
        )
        # The readable fields must say what the proven objects say.
        if "value" not in obj:
            raise DecodeError("state proof lacks 'value'")
        stated = obj["value"]
        proven = bundle.proof.value
        if (stated is None) != (proven is None) or (proven is not None and stated != proven.hex()):
            raise DecodeError("the bundle's value is not the proven value")
        if obj.get("present") is not (proven is not None):
            raise DecodeError("the bundle's 'present' does not say what the proof proves")
        height = obj.get("height")
        if type(height) is not int or height != bundle.header.height:
            raise DecodeError("the bundle's height is not its header's")
        return bundle


def verify_state_bundle(
    bundle: StateProofBundle, *, trusted_validators: ValidatorSet | None = None
) -> None:
    """Check that the key had the stated value (or none) after the certified block."""
    header = bundle.header
    # The proof is about this contract's key.
    if bundle.proof.key != contract_state_key(bundle.contract, bundle.key):
        raise InvalidProof("the proof is for another key")
    # The key's value is in the block's state root.
    verify_proof(header.state_root, bundle.proof)
    # The validator set is the one the set we trust leads to, if we were told one.
    trusted_signers(header, bundle.validators, trusted_validators, bundle.handoffs)
    # More than 2/3 of that validator set signed this header.
    try:
        bundle.commit.validate(header.chain_id, header, bundle.validators)
    except InvalidBlock as exc:
        raise InvalidProof(exc.message) from None
