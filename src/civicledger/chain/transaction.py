"""Signed transactions: the only way anything changes on the ledger.

A transaction is the canonical encoding of a 9-item list (see ``docs/spec/transactions.md``).
The sender signs ``DOMAIN_TX_SIGN || encode(first 8 items)``; the chain id is among the
signed items, so a transaction cannot be replayed on another network. The transaction id
is ``SHA-256(encode(all 9 items))``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from civicledger.crypto.hashing import DOMAIN_TX_SIGN, sha256
from civicledger.crypto.keys import KeyPair, compute_address, is_valid_signature
from civicledger.encoding import (
    TAG_BYTES,
    TAG_LIST,
    TAG_MAP,
    TAG_STRING,
    TAG_UINT,
    Value,
    decode,
    decode_item,
    encode,
)
from civicledger.errors import DecodeError, InvalidTransaction
from civicledger.types import (
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    Address,
    Hash32,
    PublicKey,
    Signature,
    parse_public_key,
    parse_signature,
)

__all__ = [
    "DEFAULT_FUEL_LIMIT",
    "MAX_ARGS_SIZE",
    "MAX_FUEL_LIMIT",
    "MAX_NAME_LENGTH",
    "MAX_TX_SIZE",
    "Transaction",
    "decode_transaction",
    "make_transaction",
]

#: Largest encoded transaction accepted anywhere (bytes).
MAX_TX_SIZE = 64 * 1024
#: Largest encoded argument map (bytes).
MAX_ARGS_SIZE = 48 * 1024
#: Contract and method names are at most this long (ASCII identifiers).
MAX_NAME_LENGTH = 64
DEFAULT_FUEL_LIMIT = 1_000_000
MAX_FUEL_LIMIT = 100_000_000
MAX_NONCE = 2**64 - 1
#: A list of 8 items (the signed body) and, counted from the end of a transaction's
#: encoding, where its signature item (tag, length 64, 64 bytes) starts.
_BODY_HEADER = bytes([TAG_LIST, 8])
_SIGNATURE_ITEM = -(2 + SIGNATURE_SIZE)
MAX_HEIGHT = 2**63 - 1


def _is_identifier(name: str) -> bool:
    return (
        0 < len(name) <= MAX_NAME_LENGTH
        and name.isascii()
        and name.replace("_", "a").replace(".", "a").isalnum()
        and not name[0].isdigit()
    )


@dataclass(frozen=True, slots=True)
class Transaction:
    """A signed call of one contract method."""

    #: The network this transaction is for; signed, so it cannot be replayed elsewhere.
    chain_id: str
    #: The sender's Ed25519 public key; the sender's address is derived from it.
    sender: PublicKey
    #: The sender's sequence number: 0 for the first transaction, then +1 each time.
    nonce: int
    #: The contract called, e.g. ``"documents"``.
    contract: str
    #: The method called, e.g. ``"register"``.
    method: str
    #: Named arguments of the call.
    args: dict[str, Value]
    #: The most fuel the call may use; exceeding it fails the transaction.
    fuel_limit: int
    #: Last height at which the transaction may be included; 0 means no expiry.
    expiry: int
    #: Ed25519 signature over ``signing_bytes``.
    signature: Signature
    #: Cached canonical encoding (not a field of the transaction itself; the signature
    #: is checked against it: a copy with other fields must clear the three caches).
    _encoded: bytes = field(default=b"", compare=False, repr=False)
    #: Cached id and sender address: every node asks for them many times per transaction.
    _tx_id: bytes = field(default=b"", compare=False, repr=False)
    _sender_address: bytes = field(default=b"", compare=False, repr=False)

    def body_value(self) -> list[Value]:
        return [
            self.chain_id,
            self.sender,
            self.nonce,
            self.contract,
            self.method,
            self.args,
            self.fuel_limit,
            self.expiry,
        ]

    def to_value(self) -> list[Value]:
        return [*self.body_value(), self.signature]

    @property
    def encoded(self) -> bytes:
        if not self._encoded:
            object.__setattr__(self, "_encoded", encode(self.to_value()))
        return self._encoded

    @property
    def tx_id(self) -> Hash32:
        if not self._tx_id:
            object.__setattr__(self, "_tx_id", sha256(self.encoded))
        return Hash32(self._tx_id)

    @property
    def signing_bytes(self) -> bytes:
        # The encoding is LIST 9 ‖ the 8 body items ‖ BYTES 64 ‖ signature, and the signed
        # body is LIST 8 ‖ the same items: cut it out instead of encoding it again.
        return DOMAIN_TX_SIGN + _BODY_HEADER + self.encoded[2:_SIGNATURE_ITEM]

    @property
    def sender_address(self) -> Address:
        if not self._sender_address:
            object.__setattr__(self, "_sender_address", compute_address(self.sender))
        return Address(self._sender_address)

    def is_signature_valid(self) -> bool:
        return is_valid_signature(self.sender, self.signing_bytes, self.signature)

    def to_json(self) -> dict[str, Any]:
        from civicledger.jsonvalue import value_to_json

        return {
            "tx_id": self.tx_id.hex(),
            "chain_id": self.chain_id,
            "sender": self.sender.hex(),
            "sender_address": self.sender_address.hex(),
            "nonce": self.nonce,
            "contract": self.contract,
            "method": self.method,
            "args": value_to_json(self.args),
            "fuel_limit": self.fuel_limit,
            "expiry": self.expiry,
            "signature": self.signature.hex(),
        }


def compute_signing_bytes(body: list[Value]) -> bytes:
    return DOMAIN_TX_SIGN + encode(body)


def validate_transaction_fields(tx: Transaction) -> None:
    """Check everything about a transaction that needs no state and no signature check."""
    # Names are short ASCII identifiers.
    if not _is_identifier(tx.contract):
        raise InvalidTransaction(f"invalid contract name {tx.contract[:80]!r}", code="bad_contract")
    if not _is_identifier(tx.method) or tx.method.startswith("_"):
        raise InvalidTransaction(f"invalid method name {tx.method[:80]!r}", code="bad_method")
    # Numbers stay within their ranges.
    if not 0 <= tx.nonce <= MAX_NONCE:
        raise InvalidTransaction("nonce must be between 0 and 2**64-1", code="bad_nonce")
    if not 1 <= tx.fuel_limit <= MAX_FUEL_LIMIT:
        raise InvalidTransaction(
            f"fuel_limit must be between 1 and {MAX_FUEL_LIMIT}", code="bad_fuel_limit"
        )
    if not 0 <= tx.expiry <= MAX_HEIGHT:
        raise InvalidTransaction("expiry must be a height between 0 and 2**63-1", code="bad_expiry")
    if not 0 < len(tx.chain_id) <= MAX_NAME_LENGTH:
        raise InvalidTransaction("chain_id must be 1 to 64 characters", code="bad_chain_id")
    # The whole transaction stays small.
    if len(tx.encoded) > MAX_TX_SIZE:
        raise InvalidTransaction(
            f"transaction is {len(tx.encoded)} bytes, the limit is {MAX_TX_SIZE}", code="too_large"
        )


def decode_transaction(data: bytes) -> Transaction:
    """Decode and check the shape of a transaction; raise ``DecodeError``/``InvalidTransaction``."""
    if len(data) > MAX_TX_SIZE:
        raise InvalidTransaction(
            f"transaction is {len(data)} bytes, the limit is {MAX_TX_SIZE}", code="too_large"
        )
    data = bytes(data)
    tx = _decode_short_form(data)
    if tx is not None:
        return tx
    value = decode(data)
    return transaction_from_value(value, encoded=data)


class _NotShort(Exception):
    """The input is not of the short form: the general decoder reads it."""


def _short_text(data: bytes, pos: int) -> tuple[str, int]:
    if data[pos] != TAG_STRING or data[pos + 1] >= 0x80:
        raise _NotShort
    end = pos + 2 + data[pos + 1]
    text = data[pos + 2 : end]
    if end > len(data) or not text.isascii():
        raise _NotShort
    return text.decode("ascii"), end


def _short_uint(data: bytes, pos: int) -> tuple[int, int]:
    size = data[pos + 1]
    end = pos + 2 + size
    if data[pos] != TAG_UINT or size > 8 or end > len(data) or (size and not data[pos + 2]):
        raise _NotShort
    return int.from_bytes(data[pos + 2 : end], "big"), end


def _decode_short_form(data: bytes) -> Transaction | None:
    """The transaction ``data`` encodes when it has the usual short form (ASCII names,
    one-byte lengths, numbers below 2**64), read in place without building the list of
    its items; ``None`` for any other input, which ``decode`` then reads with its own
    errors. The result is the one the general path gives (``tests/unit`` holds both to
    it)."""
    try:
        if data[0] != TAG_LIST or data[1] != 9:
            raise _NotShort
        chain_id, pos = _short_text(data, 2)
        if data[pos] != TAG_BYTES or data[pos + 1] != PUBLIC_KEY_SIZE:
            raise _NotShort
        sender = data[pos + 2 : pos + 2 + PUBLIC_KEY_SIZE]
        nonce, pos = _short_uint(data, pos + 2 + PUBLIC_KEY_SIZE)
        contract, pos = _short_text(data, pos)
        method, pos = _short_text(data, pos)
        if data[pos] != TAG_MAP:
            raise _NotShort
        args, pos = decode_item(data, pos, 1)
        fuel_limit, pos = _short_uint(data, pos)
        expiry, pos = _short_uint(data, pos)
        if (
            data[pos] != TAG_BYTES
            or data[pos + 1] != SIGNATURE_SIZE
            or pos + 2 + SIGNATURE_SIZE != len(data)
        ):
            raise _NotShort
        signature = data[pos + 2 :]
    except (_NotShort, IndexError, DecodeError):
        return None
    assert isinstance(args, dict)
    return _checked(
        Transaction(
            chain_id=chain_id,
            sender=PublicKey(sender),
            nonce=nonce,
            contract=contract,
            method=method,
            args=args,
            fuel_limit=fuel_limit,
            expiry=expiry,
            signature=Signature(signature),
            _encoded=data,
        )
    )


def _checked(tx: Transaction) -> Transaction:
    """``tx`` once its fields are within bounds (``InvalidTransaction`` otherwise)."""
    validate_transaction_fields(tx)
    # The arguments are part of the transaction: only a large one needs measuring.
    if len(tx.encoded) > MAX_ARGS_SIZE and len(encode(tx.args)) > MAX_ARGS_SIZE:
        raise InvalidTransaction(f"arguments exceed {MAX_ARGS_SIZE} bytes", code="too_large")
    return tx


def transaction_from_value(value: Value, *, encoded: bytes = b"") -> Transaction:
    if not isinstance(value, list) or len(value) != 9:
        raise DecodeError("a transaction is a list of 9 items")
    chain_id, sender, nonce, contract, method, args, fuel_limit, expiry, signature = value
    if not isinstance(chain_id, str):
        raise DecodeError("transaction chain_id must be a string")
    if not isinstance(sender, bytes):
        raise DecodeError("transaction sender must be bytes (a public key)")
    for name, item in (("nonce", nonce), ("fuel_limit", fuel_limit), ("expiry", expiry)):
        if not isinstance(item, int) or isinstance(item, bool):
            raise DecodeError(f"transaction {name} must be an integer")
    if not isinstance(contract, str) or not isinstance(method, str):
        raise DecodeError("transaction contract and method must be strings")
    if not isinstance(args, dict):
        raise DecodeError("transaction args must be a map")
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
        raise DecodeError(f"transaction signature must be {SIGNATURE_SIZE} bytes")
    assert isinstance(nonce, int) and isinstance(fuel_limit, int) and isinstance(expiry, int)
    sender_key = parse_public_key(sender, "transaction sender")
    fields = (chain_id, sender_key, nonce, contract, method, args, fuel_limit, expiry)
    return _checked(Transaction(*fields, parse_signature(signature), _encoded=encoded))


def make_transaction(
    key: KeyPair,
    *,
    chain_id: str,
    nonce: int,
    contract: str,
    method: str,
    args: dict[str, Value] | None = None,
    fuel_limit: int = DEFAULT_FUEL_LIMIT,
    expiry: int = 0,
) -> Transaction:
    """Build and sign a transaction."""
    body: list[Value] = [
        chain_id,
        key.public_key,
        nonce,
        contract,
        method,
        dict(args or {}),
        fuel_limit,
        expiry,
    ]
    signature = key.sign(compute_signing_bytes(body))
    tx = Transaction(
        chain_id=chain_id,
        sender=key.public_key,
        nonce=nonce,
        contract=contract,
        method=method,
        args=dict(args or {}),
        fuel_limit=fuel_limit,
        expiry=expiry,
        signature=signature,
    )
    validate_transaction_fields(tx)
    return tx
