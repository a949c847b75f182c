"""Transaction receipts with everything needed to verify them offline.

A ``ReceiptProof`` bundles a transaction, its receipt, Merkle inclusion proofs of both,
the block header and its commit certificate, and the validator set that signed. Anyone
can check it without a node: ``verify_receipt_proof`` recomputes every link and raises
``InvalidProof`` naming the first one that fails. Format in ``docs/spec/receipts.md``.
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
from civicledger.chain.merkle import InclusionProof, verify_inclusion
from civicledger.chain.receipt import Receipt, decode_receipt
from civicledger.chain.transaction import Transaction, decode_transaction
from civicledger.crypto.hashing import sha256
from civicledger.encoding import Value, decode, encode
from civicledger.errors import DecodeError, InvalidBlock, InvalidProof, LedgerError
from civicledger.types import parse_hex

__all__ = ["PROOF_FORMAT", "ReceiptProof", "verify_receipt_proof"]

PROOF_FORMAT = "civic-ledger/receipt-proof/v1"


@dataclass(frozen=True, slots=True)
class ReceiptProof:
    transaction: Transaction
    receipt: Receipt
    tx_proof: InclusionProof
    receipt_proof: InclusionProof
    header: Header
    commit: Commit
    validators: ValidatorSet
    #: The validator-set handoffs below the block (``chain/handoff.py``), so that a
    #: verifier that trusts the genesis validators can follow them to this block's.
    handoffs: tuple[Handoff, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The saved form: every consensus object as hex of its canonical encoding."""
        return {
            "format": PROOF_FORMAT,
            "tx_id": self.transaction.tx_id.hex(),
            "height": self.header.height,
            "status": "ok" if self.receipt.ok else "failed",
            "transaction": self.transaction.encoded.hex(),
            "receipt": self.receipt.encoded.hex(),
            "tx_proof": encode(self.tx_proof.to_value()).hex(),
            "receipt_proof": encode(self.receipt_proof.to_value()).hex(),
            "header": self.header.encoded.hex(),
            "commit": self.commit.encoded.hex(),
            "validators": encode(self.validators.to_value()).hex(),
        } | ({"handoffs": handoffs_to_json(self.handoffs)} if self.handoffs else {})

    @classmethod
    def from_json(cls, obj: Any) -> ReceiptProof:
        if not isinstance(obj, dict) or obj.get("format") != PROOF_FORMAT:
            raise DecodeError(f"not a receipt proof (expected format {PROOF_FORMAT!r})")

        def field(name: str) -> bytes:
            if name not in obj:
                raise DecodeError(f"receipt proof lacks {name!r}")
            return parse_hex(obj[name], what=name)

        def value(name: str) -> Value:
            return decode(field(name))

        proof = cls(
            transaction=decode_transaction(field("transaction")),
            receipt=decode_receipt(field("receipt")),
            tx_proof=InclusionProof.from_value(value("tx_proof")),
            receipt_proof=InclusionProof.from_value(value("receipt_proof")),
            header=Header.from_value(value("header")),
            commit=Commit.from_value(value("commit")),
            validators=ValidatorSet.from_value(value("validators")),
            handoffs=handoffs_from_json(obj),
        )
        # The readable summary fields must say what the proven objects say.
        if obj.get("tx_id") != proof.transaction.tx_id.hex():
            raise DecodeError("the proof's tx_id is not the id of its transaction")
        height = obj.get("height")
        if type(height) is not int or height != proof.header.height:
            raise DecodeError("the proof's height is not the height of its header")
        if obj.get("status") != ("ok" if proof.receipt.ok else "failed"):
            raise DecodeError("the proof's status is not the status of its receipt")
        return proof


def verify_receipt_proof(
    proof: ReceiptProof, *, trusted_validators: ValidatorSet | None = None
) -> None:
    """Check every link from the transaction to the validators' signatures.

    Without ``trusted_validators`` the proof shows the block was signed by the validator
    set its header names; pass the set you trust (e.g. from the genesis file) to check
    that it is that one, or the one it hands over to through the proof's handoffs.
    """
    tx, receipt, header = proof.transaction, proof.receipt, proof.header
    try:
        # The receipt is this transaction's.
        if receipt.tx_id != tx.tx_id:
            raise InvalidProof("the receipt is for a different transaction")
        # The transaction is signed by its sender for this chain.
        if tx.chain_id != header.chain_id:
            raise InvalidProof("the transaction is for a different chain than the block")
        if not tx.is_signature_valid():
            raise InvalidProof("the transaction's signature is invalid")
        # Both sit at the same index; the receipts follow the transactions one for one
        # (scheduled calls' receipts come after them, so there may be more receipts).
        if proof.tx_proof.index != proof.receipt_proof.index:
            raise InvalidProof("transaction and receipt proofs are for different positions")
        if proof.receipt_proof.tree_size < proof.tx_proof.tree_size:
            raise InvalidProof("the block has fewer receipts than transactions")
        # The transaction is in the block's transactions root.
        verify_inclusion(tx.encoded, proof.tx_proof, header.tx_root)
        # The receipt is in the block's receipts root.
        verify_inclusion(receipt.encoded, proof.receipt_proof, header.receipts_root)
        # The validator set is the one the set we trust leads to, if we were told one.
        trusted_signers(header, proof.validators, trusted_validators, proof.handoffs)
        # More than 2/3 of that validator set signed this very header.
        proof.commit.validate(header.chain_id, header, proof.validators)
    except InvalidBlock as exc:
        raise InvalidProof(exc.message) from None
    except InvalidProof:
        raise
    except LedgerError as exc:
        raise InvalidProof(exc.message) from None


def compute_tx_hash(raw: bytes) -> bytes:
    return sha256(raw)
