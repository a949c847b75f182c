"""Distinct types for the values the ledger talks about.

``NewType`` gives each its own name for readers and for mypy at no run-time cost;
lengths are validated once, at the boundary, by the ``parse_*`` helpers.
"""

from __future__ import annotations

from typing import NewType

from civicledger.errors import DecodeError

__all__ = [
    "ADDRESS_SIZE",
    "HASH_SIZE",
    "PUBLIC_KEY_SIZE",
    "SIGNATURE_SIZE",
    "Address",
    "Hash32",
    "Height",
    "PublicKey",
    "Signature",
    "parse_address",
    "parse_hash",
    "parse_hex",
    "parse_public_key",
    "parse_signature",
]

HASH_SIZE = 32
ADDRESS_SIZE = 20
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64

#: A SHA-256 digest.
Hash32 = NewType("Hash32", bytes)
#: An account's address: the first 20 bytes of a domain-separated hash of its public key.
Address = NewType("Address", bytes)
#: A raw Ed25519 public key.
PublicKey = NewType("PublicKey", bytes)
#: A raw Ed25519 signature.
Signature = NewType("Signature", bytes)
#: A block height; genesis is height 0.
Height = NewType("Height", int)


def parse_hex(text: str, *, what: str, size: int | None = None) -> bytes:
    """Decode lowercase or uppercase hex (an optional ``0x`` prefix is accepted)."""
    if not isinstance(text, str):
        raise DecodeError(f"{what} must be a hex string")
    body = text[2:] if text[:2] in ("0x", "0X") else text
    try:
        raw = bytes.fromhex(body)
    except ValueError:
        raise DecodeError(f"{what} is not valid hex: {text[:80]!r}") from None
    if size is not None and len(raw) != size:
        raise DecodeError(f"{what} must be {size} bytes, got {len(raw)}")
    return raw


def _exact(raw: bytes, size: int, what: str) -> bytes:
    if not isinstance(raw, bytes) or len(raw) != size:
        got = len(raw) if isinstance(raw, bytes) else type(raw).__name__
        raise DecodeError(f"{what} must be {size} bytes, got {got}")
    return raw


def parse_hash(raw: bytes, what: str = "hash") -> Hash32:
    return Hash32(_exact(raw, HASH_SIZE, what))


def parse_address(raw: bytes, what: str = "address") -> Address:
    return Address(_exact(raw, ADDRESS_SIZE, what))


def parse_public_key(raw: bytes, what: str = "public key") -> PublicKey:
    return PublicKey(_exact(raw, PUBLIC_KEY_SIZE, what))


def parse_signature(raw: bytes, what: str = "signature") -> Signature:
    return Signature(_exact(raw, SIGNATURE_SIZE, what))
