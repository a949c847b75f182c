"""SHA-256 and the domain tags that keep one kind of hash from passing as another."""

from __future__ import annotations

import hashlib

from civicledger.types import Hash32

__all__ = [
    "DOMAIN_ADDRESS",
    "DOMAIN_BLOCK",
    "DOMAIN_TX_SIGN",
    "DOMAIN_VOTE_SIGN",
    "sha256",
    "tagged_hash",
]

#: Prefixes of signed or hashed messages (see docs/spec/encoding.md, "Domains").
DOMAIN_TX_SIGN = b"civic-ledger/tx/v1\x00"
DOMAIN_VOTE_SIGN = b"civic-ledger/vote/v1\x00"
DOMAIN_ADDRESS = b"civic-ledger/address/v1\x00"
DOMAIN_BLOCK = b"civic-ledger/block/v1\x00"


def sha256(data: bytes) -> Hash32:
    return Hash32(hashlib.sha256(data).digest())


def tagged_hash(domain: bytes, data: bytes) -> Hash32:
    """SHA-256 of ``domain || data``."""
    h = hashlib.sha256(domain)
    h.update(data)
    return Hash32(h.digest())
