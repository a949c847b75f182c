"""Ed25519 key pairs (through PyNaCl / libsodium) and address derivation.

An address is the first 20 bytes of ``SHA-256("civic-ledger/address/v1\\x00" || public_key)``,
shown as 40 lowercase hex digits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nacl.exceptions
import nacl.signing

from civicledger.crypto.hashing import DOMAIN_ADDRESS, tagged_hash
from civicledger.types import (
    ADDRESS_SIZE,
    Address,
    PublicKey,
    Signature,
    parse_public_key,
)

__all__ = ["KeyPair", "compute_address", "is_valid_signature"]


def compute_address(public_key: PublicKey) -> Address:
    """Derive the address of an account from its public key."""
    return Address(tagged_hash(DOMAIN_ADDRESS, public_key)[:ADDRESS_SIZE])


def is_valid_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True if ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key``.

    libsodium's verification is strict (canonical S, no small-order keys), so a valid
    signature cannot be malleated into another valid one.
    """
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, TypeError):
        return False
    except nacl.exceptions.CryptoError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class KeyPair:
    """An Ed25519 key pair held in memory."""

    seed: bytes
    # Derived once (a scalar multiplication each): a validator's key is asked for its
    # public key and address many times per block.
    _signing_key: nacl.signing.SigningKey = field(init=False, repr=False, compare=False)
    _public_key: PublicKey = field(init=False, repr=False, compare=False)
    _address: Address = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = nacl.signing.SigningKey(self.seed)
        public = parse_public_key(bytes(key.verify_key))
        object.__setattr__(self, "_signing_key", key)
        object.__setattr__(self, "_public_key", public)
        object.__setattr__(self, "_address", compute_address(public))

    @classmethod
    def generate(cls) -> KeyPair:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @classmethod
    def from_seed(cls, seed: bytes) -> KeyPair:
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        return cls(bytes(seed))

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    @property
    def address(self) -> Address:
        return self._address

    def sign(self, message: bytes) -> Signature:
        return Signature(self._signing_key.sign(message).signature)

    def __repr__(self) -> str:  # never print the seed
        return f"KeyPair(address={self.address.hex()})"
