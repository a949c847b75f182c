"""Encrypted, mutually authenticated links between nodes.

The handshake is station-to-station over X25519, the design CometBFT's "secret
connection" uses, built from the ``cryptography`` library's primitives (no maintained
Python Noise or TLS binding lets us authenticate a peer by a raw Ed25519 node key, which
is how validators are known on chain). Specified in ``docs/spec/p2p.md``:

1. Each side sends ``MAGIC || ephemeral X25519 public key`` (40 bytes, in clear).
2. Both compute the X25519 shared secret and the transcript hash
   ``SHA-256(DOMAIN_P2P || lower ephemeral key || higher ephemeral key)``; HKDF-SHA256 of
   the secret (salt = transcript) gives one ChaCha20-Poly1305 key per direction.
3. Each side sends, encrypted, ``[node public key, signature of DOMAIN_P2P_AUTH ||
   transcript, hello]``; each checks the signature, so each knows the other holds the
   node key it claims, on this very connection (a recorded handshake cannot be replayed:
   the ephemeral keys differ).

Frames: a 4-byte big-endian length, then the AEAD ciphertext of the payload with a
per-direction counter nonce. Frames over ``max_frame`` are refused before reading them.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from civicledger.crypto.keys import KeyPair, is_valid_signature
from civicledger.encoding import Value, decode, encode
from civicledger.errors import DecodeError, LedgerError
from civicledger.types import PublicKey, parse_public_key

__all__ = [
    "MAGIC",
    "HandshakeError",
    "SecureConnection",
    "handshake",
]

MAGIC = b"CIVICP2\x01"
DOMAIN_P2P = b"civic-ledger/p2p/v1\x00"
DOMAIN_P2P_AUTH = b"civic-ledger/p2p-auth/v1\x00"
TAG_SIZE = 16
MAX_HELLO = 4096


class HandshakeError(LedgerError):
    """A peer failed the handshake (garbage, wrong key, wrong network, not allowed)."""

    code = "handshake_failed"


class FrameError(LedgerError):
    """A peer sent a frame that is too large, forged or out of order."""

    code = "bad_frame"


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(slots=True)
class _Direction:
    aead: ChaCha20Poly1305
    counter: int = 0

    def next_nonce(self) -> bytes:
        nonce = struct.pack("<Q", self.counter) + b"\x00\x00\x00\x00"
        self.counter += 1
        return nonce


class SecureConnection:
    """An authenticated peer link: ``send`` and ``receive`` whole messages."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        send_key: bytes,
        receive_key: bytes,
        *,
        max_frame: int,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self._send = _Direction(ChaCha20Poly1305(send_key))
        self._receive = _Direction(ChaCha20Poly1305(receive_key))
        self.max_frame = max_frame
        #: Set by the handshake: the peer's node key and what it said about itself.
        self.peer_key: PublicKey = PublicKey(b"")
        self.peer_hello: dict[str, Value] = {}

    async def send(self, payload: bytes) -> None:
        if len(payload) > self.max_frame:
            raise FrameError(f"frame of {len(payload)} bytes exceeds {self.max_frame}")
        ciphertext = self._send.aead.encrypt(self._send.next_nonce(), payload, None)
        self.writer.write(struct.pack(">I", len(ciphertext)) + ciphertext)
        await self.writer.drain()

    async def receive(self, limit: int | None = None) -> bytes:
        header = await self.reader.readexactly(4)
        (length,) = struct.unpack(">I", header)
        # Refuse oversized frames before reading (or allocating) them.
        if not TAG_SIZE <= length <= (limit or self.max_frame) + TAG_SIZE:
            raise FrameError(f"peer announced a frame of {length} bytes")
        ciphertext = await self.reader.readexactly(length)
        try:
            return self._receive.aead.decrypt(self._receive.next_nonce(), ciphertext, None)
        except InvalidTag:
            raise FrameError(
                "frame failed authentication (forged, replayed or reordered)"
            ) from None

    def close(self) -> None:
        self.writer.close()


async def handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    node_key: KeyPair,
    hello: dict[str, Value],
    *,
    max_frame: int,
) -> SecureConnection:
    """Run the handshake on a fresh TCP stream; the caller bounds it with a timeout.

    Returns a connection whose ``peer_key`` and ``peer_hello`` the caller must check
    (allowlist, chain id, genesis hash) before trusting anything the peer says.
    """
    ephemeral = X25519PrivateKey.generate()
    mine = _raw(ephemeral.public_key())
    writer.write(MAGIC + mine)
    await writer.drain()
    opening = await reader.readexactly(len(MAGIC) + 32)
    if opening[: len(MAGIC)] != MAGIC:
        raise HandshakeError("peer does not speak the Civic Ledger p2p protocol v1")
    theirs = opening[len(MAGIC) :]
    if theirs == mine:
        raise HandshakeError("peer echoed our ephemeral key")
    try:
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(theirs))
    except ValueError:
        raise HandshakeError("peer sent an invalid ephemeral key") from None
    low, high = sorted((mine, theirs))
    transcript = hashlib.sha256(DOMAIN_P2P + low + high).digest()
    keys = HKDF(
        algorithm=hashes.SHA256(), length=64, salt=transcript, info=b"civic-ledger/p2p/keys"
    ).derive(shared)
    key_low, key_high = keys[:32], keys[32:]
    send_key, receive_key = (key_low, key_high) if mine == low else (key_high, key_low)
    conn = SecureConnection(reader, writer, send_key, receive_key, max_frame=max_frame)

    signature = node_key.sign(DOMAIN_P2P_AUTH + transcript)
    await conn.send(encode([node_key.public_key, signature, hello]))
    # An unauthenticated peer may send only a small frame.
    auth_frame = await conn.receive(limit=MAX_HELLO)
    try:
        auth = decode(auth_frame, max_size=MAX_HELLO)
        if not isinstance(auth, list) or len(auth) != 3:
            raise DecodeError("authentication message is not a 3-item list")
        peer_key_raw, peer_signature, peer_hello = auth
        if not isinstance(peer_key_raw, bytes) or not isinstance(peer_signature, bytes):
            raise DecodeError("peer key and signature must be bytes")
        if not isinstance(peer_hello, dict):
            raise DecodeError("peer hello must be a map")
        peer_key = parse_public_key(peer_key_raw, "peer node key")
    except DecodeError as exc:
        raise HandshakeError(f"bad authentication message: {exc.message}") from None
    if not is_valid_signature(peer_key, DOMAIN_P2P_AUTH + transcript, peer_signature):
        raise HandshakeError("peer could not prove it holds the node key it claims")
    if peer_key == node_key.public_key:
        raise HandshakeError("connected to ourselves")
    conn.peer_key = peer_key
    conn.peer_hello = peer_hello
    return conn
