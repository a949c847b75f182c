"""Blocks, their headers, validator sets and commit certificates.

A block header commits to everything: the previous block, the transactions (Merkle root),
the state after them, their receipts and the validator set that must sign. A block is
final once a *commit* holds precommit signatures of validators with more than 2/3 of the
voting power over ``(chain_id, height, round, block_hash)``. With one validator that is a
single signature; the BFT engine produces the same structure with many. Specified in
``docs/spec/blocks.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from civicledger.chain.merkle import compute_root
from civicledger.chain.receipt import Receipt
from civicledger.chain.transaction import Transaction, decode_transaction
from civicledger.crypto.hashing import DOMAIN_BLOCK, DOMAIN_VOTE_SIGN, sha256, tagged_hash
from civicledger.crypto.keys import KeyPair, compute_address, is_valid_signature
from civicledger.encoding import Value, decode, encode
from civicledger.errors import DecodeError, InvalidBlock
from civicledger.types import (
    Address,
    Hash32,
    PublicKey,
    Signature,
    parse_address,
    parse_hash,
    parse_public_key,
    parse_signature,
)

__all__ = [
    "MAX_BLOCK_SIZE",
    "ZERO_HASH",
    "Block",
    "Commit",
    "CommitSignature",
    "Header",
    "Validator",
    "ValidatorSet",
    "compute_tx_root",
    "decode_block",
    "decode_commit",
    "decode_header",
    "vote_signing_bytes",
]

ZERO_HASH = Hash32(bytes(32))
#: Largest encoded block (bytes).
MAX_BLOCK_SIZE = 16 * 1024 * 1024
PRECOMMIT = "precommit"


def _int(value: Value, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DecodeError(f"{what} must be a non-negative integer")
    return value


def _bytes(value: Value, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise DecodeError(f"{what} must be bytes")
    return value


@dataclass(frozen=True, slots=True)
class Validator:
    """A member of the validator set."""

    #: The validator's Ed25519 public key (it signs votes with it).
    public_key: PublicKey
    #: Its voting power, a positive integer.
    power: int

    @property
    def address(self) -> Address:
        return compute_address(self.public_key)


@dataclass(frozen=True, slots=True)
class ValidatorSet:
    """The validators of a height, in canonical order (by public key)."""

    validators: tuple[Validator, ...]

    def __post_init__(self) -> None:
        keys = [v.public_key for v in self.validators]
        if not keys:
            raise InvalidBlock("a validator set needs at least one validator")
        if keys != sorted(keys) or len(set(keys)) != len(keys):
            raise InvalidBlock("validators must be sorted by public key and unique")
        if any(v.power <= 0 for v in self.validators):
            raise InvalidBlock("every validator needs a positive power")

    @classmethod
    def of(cls, validators: list[Validator]) -> ValidatorSet:
        return cls(tuple(sorted(validators, key=lambda v: v.public_key)))

    def to_value(self) -> list[Value]:
        return [[v.public_key, v.power] for v in self.validators]

    @classmethod
    def from_value(cls, value: Value) -> ValidatorSet:
        if not isinstance(value, list):
            raise DecodeError("a validator set is a list")
        validators = []
        for item in value:
            if not isinstance(item, list) or len(item) != 2:
                raise DecodeError("a validator is a [public_key, power] pair")
            validators.append(
                Validator(
                    parse_public_key(_bytes(item[0], "validator key")),
                    _int(item[1], "validator power"),
                )
            )
        try:
            return cls(tuple(validators))
        except InvalidBlock as exc:
            raise DecodeError(exc.message) from None

    @property
    def hash(self) -> Hash32:
        return sha256(encode(self.to_value()))

    @property
    def total_power(self) -> int:
        return sum(v.power for v in self.validators)

    def get_power(self, public_key: bytes) -> int:
        for v in self.validators:
            if v.public_key == public_key:
                return v.power
        return 0

    def has_supermajority(self, public_keys: object) -> bool:
        """Whether the validators among ``public_keys`` (each counted once) hold more than
        two thirds of the power."""
        assert isinstance(public_keys, (list, tuple, set, frozenset))
        keys = {k for k in public_keys if isinstance(k, bytes)}
        return 3 * sum(self.get_power(k) for k in keys) > 2 * self.total_power

    def compute_proposer(self, height: int, round_: int = 0) -> Validator:
        """Weighted round robin (single validator: always it). Refined by the BFT engine."""
        total = self.total_power
        slot = (height + round_) % total
        for v in self.validators:
            if slot < v.power:
                return v
            slot -= v.power
        raise AssertionError("unreachable: slot < total power")


@dataclass(frozen=True, slots=True)
class Header:
    """What a block hash commits to."""

    #: The network's identifier.
    chain_id: str
    #: Height of this block; genesis is 0.
    height: int
    #: Hash of the previous block's header (zeros for genesis).
    prev_hash: Hash32
    #: Block time in milliseconds since the Unix epoch, strictly above the previous block's.
    time_ms: int
    #: Address of the validator that proposed the block (zeros for genesis).
    proposer: Address
    #: ``merkle.compute_root`` over the encoded transactions, in block order.
    tx_root: Hash32
    #: Root of the state tree after executing this block (``state.smt``).
    state_root: Hash32
    #: ``merkle.compute_root`` over the encoded receipts, in block order.
    receipts_root: Hash32
    #: ``ValidatorSet.hash`` of the validators that must sign this block.
    validator_set_hash: Hash32

    def to_value(self) -> list[Value]:
        return [
            self.chain_id,
            self.height,
            self.prev_hash,
            self.time_ms,
            self.proposer,
            self.tx_root,
            self.state_root,
            self.receipts_root,
            self.validator_set_hash,
        ]

    @classmethod
    def from_value(cls, value: Value) -> Header:
        if not isinstance(value, list) or len(value) != 9:
            raise DecodeError("a header is a list of 9 items")
        chain_id = value[0]
        if not isinstance(chain_id, str):
            raise DecodeError("header chain_id must be a string")
        return cls(
            chain_id=chain_id,
            height=_int(value[1], "header height"),
            prev_hash=parse_hash(_bytes(value[2], "prev_hash"), "prev_hash"),
            time_ms=_int(value[3], "header time"),
            proposer=parse_address(_bytes(value[4], "proposer"), "proposer"),
            tx_root=parse_hash(_bytes(value[5], "tx_root"), "tx_root"),
            state_root=parse_hash(_bytes(value[6], "state_root"), "state_root"),
            receipts_root=parse_hash(_bytes(value[7], "receipts_root"), "receipts_root"),
            validator_set_hash=parse_hash(
                _bytes(value[8], "validator_set_hash"), "validator_set_hash"
            ),
        )

    @property
    def encoded(self) -> bytes:
        return encode(self.to_value())

    @property
    def hash(self) -> Hash32:
        """The block hash: ``SHA-256(DOMAIN_BLOCK || encode(header))``."""
        return tagged_hash(DOMAIN_BLOCK, self.encoded)

    def to_json(self) -> dict[str, Any]:
        return {
            "hash": self.hash.hex(),
            "chain_id": self.chain_id,
            "height": self.height,
            "prev_hash": self.prev_hash.hex(),
            "time_ms": self.time_ms,
            "proposer": self.proposer.hex(),
            "tx_root": self.tx_root.hex(),
            "state_root": self.state_root.hex(),
            "receipts_root": self.receipts_root.hex(),
            "validator_set_hash": self.validator_set_hash.hex(),
        }


def decode_header(data: bytes) -> Header:
    return Header.from_value(decode(data))


def vote_signing_bytes(
    chain_id: str, height: int, round_: int, block_hash: bytes, vote_type: str = PRECOMMIT
) -> bytes:
    """What a validator signs to vote ``vote_type`` for ``block_hash`` (empty: nil) at
    ``(height, round)``; a commit holds precommits."""
    return DOMAIN_VOTE_SIGN + encode([chain_id, vote_type, height, round_, block_hash])


@dataclass(frozen=True, slots=True)
class CommitSignature:
    """One validator's precommit signature in a commit."""

    public_key: PublicKey
    signature: Signature


@dataclass(frozen=True, slots=True)
class Commit:
    """The certificate that makes a block final: > 2/3 of voting power signed it."""

    #: Height of the committed block.
    height: int
    #: Consensus round in which the block was committed.
    round: int
    #: Hash of the committed block's header.
    block_hash: Hash32
    #: Precommit signatures, sorted by public key, one per validator.
    signatures: tuple[CommitSignature, ...]

    def to_value(self) -> list[Value]:
        return [
            self.height,
            self.round,
            self.block_hash,
            [[s.public_key, s.signature] for s in self.signatures],
        ]

    @classmethod
    def from_value(cls, value: Value) -> Commit:
        if not isinstance(value, list) or len(value) != 4:
            raise DecodeError("a commit is a list of 4 items")
        sigs_value = value[3]
        if not isinstance(sigs_value, list):
            raise DecodeError("commit signatures must be a list")
        signatures = []
        for item in sigs_value:
            if not isinstance(item, list) or len(item) != 2:
                raise DecodeError("a commit signature is a [public_key, signature] pair")
            signatures.append(
                CommitSignature(
                    parse_public_key(_bytes(item[0], "signer key")),
                    parse_signature(_bytes(item[1], "commit signature")),
                )
            )
        return cls(
            height=_int(value[0], "commit height"),
            round=_int(value[1], "commit round"),
            block_hash=parse_hash(_bytes(value[2], "commit block hash"), "commit block hash"),
            signatures=tuple(signatures),
        )

    @property
    def encoded(self) -> bytes:
        return encode(self.to_value())

    @classmethod
    def sign(
        cls, chain_id: str, height: int, round_: int, block_hash: Hash32, keys: list[KeyPair]
    ) -> Commit:
        message = vote_signing_bytes(chain_id, height, round_, block_hash)
        sigs = sorted(
            (CommitSignature(k.public_key, k.sign(message)) for k in keys),
            key=lambda s: s.public_key,
        )
        return cls(height, round_, block_hash, tuple(sigs))

    def validate(self, chain_id: str, header: Header, validators: ValidatorSet) -> None:
        """Raise ``InvalidBlock`` unless this commit finalises ``header`` under ``validators``."""
        # The commit is for this very block.
        if self.height != header.height or self.block_hash != header.hash:
            raise InvalidBlock(f"commit at height {header.height} is for a different block")
        # The header names the validator set we check against.
        if header.validator_set_hash != validators.hash:
            raise InvalidBlock(f"block {header.height} names a different validator set")
        message = vote_signing_bytes(chain_id, self.height, self.round, self.block_hash)
        signed_power = 0
        previous = b""
        for sig in self.signatures:
            # One signature per validator, in canonical order.
            if sig.public_key <= previous:
                raise InvalidBlock(f"commit {self.height}: signers unsorted or repeated")
            previous = sig.public_key
            # Only validators of this height count.
            power = validators.get_power(sig.public_key)
            if power == 0:
                raise InvalidBlock(f"commit {self.height}: signer is not a validator")
            # Every signature must be valid, not just enough of them.
            if not is_valid_signature(sig.public_key, message, sig.signature):
                raise InvalidBlock(
                    f"commit {self.height}: bad signature from validator "
                    f"{compute_address(sig.public_key).hex()}"
                )
            signed_power += power
        # More than two thirds of the voting power signed.
        if 3 * signed_power <= 2 * validators.total_power:
            raise InvalidBlock(
                f"commit {self.height}: signed power {signed_power} of "
                f"{validators.total_power} is not more than 2/3"
            )


def decode_commit(data: bytes) -> Commit:
    return Commit.from_value(decode(data))


def compute_tx_root(transactions: list[Transaction] | tuple[Transaction, ...]) -> Hash32:
    return compute_root([tx.encoded for tx in transactions])


def compute_receipts_root(receipts: list[Receipt] | tuple[Receipt, ...]) -> Hash32:
    return compute_root([r.encoded for r in receipts])


@dataclass(frozen=True, slots=True)
class Block:
    """A header and the transactions it commits to."""

    header: Header
    transactions: tuple[Transaction, ...]
    _encoded: bytes = field(default=b"", compare=False, repr=False)

    def to_value(self) -> list[Value]:
        # Each transaction as its encoding (bytes): decoding a block then yields every
        # transaction's exact bytes, to hash and check without encoding it again.
        return [self.header.to_value(), [tx.encoded for tx in self.transactions]]

    @property
    def encoded(self) -> bytes:
        if not self._encoded:
            object.__setattr__(self, "_encoded", encode(self.to_value()))
        return self._encoded

    @property
    def hash(self) -> Hash32:
        return self.header.hash

    @property
    def height(self) -> int:
        return self.header.height


def decode_block(data: bytes, known: Callable[[Hash32], Transaction | None] | None = None) -> Block:
    """Decode a block; ``known`` may supply already-decoded transactions by id (a node's
    mempool), which are then not decoded again."""
    if len(data) > MAX_BLOCK_SIZE:
        raise DecodeError(f"block of {len(data)} bytes exceeds {MAX_BLOCK_SIZE}")
    value = decode(data)
    if not isinstance(value, list) or len(value) != 2 or not isinstance(value[1], list):
        raise DecodeError("a block is a [header, transactions] pair")
    header = Header.from_value(value[0])
    txs = []
    for item in value[1]:
        if not isinstance(item, bytes):
            raise DecodeError("a block's transactions are their encodings (bytes)")
        tx = known(sha256(item)) if known is not None else None
        txs.append(tx if tx is not None and tx.encoded == item else decode_transaction(item))
    return Block(header, tuple(txs), bytes(data))
