"""What a peer can send, fuzzed: frames, the handshake's authentication message, and
every peer message as the consensus driver receives it.

* Frames: a byte stream either yields payloads that re-encrypt to exactly the bytes
  read, or stops with ``FrameError`` (bad length, failed authentication) or
  ``IncompleteReadError`` (the stream ends); nothing else.
* Handshake: the peer's authentication message (``[node key, signature, hello]``,
  encrypted) either yields a connection whose peer key and hello re-encode to it, or
  fails with ``HandshakeError`` (``IncompleteReadError`` if the stream ends).
* Messages: a frame handed to a fresh node's consensus driver, as the peer manager does,
  raises nothing but a ``LedgerError`` (on which the peer manager drops the peer).

Inputs are random bytes and mutations of valid ones (``tests/fuzzing.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given
from hypothesis import strategies as st
from tests.fuzzing import corpus, fuzz_bytes
from tests.fuzzing import fuzz_settings as fuzz

from civicledger.crypto.keys import KeyPair
from civicledger.encoding import decode, encode
from civicledger.errors import DecodeError, LedgerError
from civicledger.node.consensus import ConsensusDriver
from civicledger.node.node import Node
from civicledger.p2p import secure
from civicledger.p2p.peers import Peer, decode_message
from civicledger.p2p.secure import (
    DOMAIN_P2P,
    DOMAIN_P2P_AUTH,
    MAGIC,
    FrameError,
    HandshakeError,
    SecureConnection,
    handshake,
)
from civicledger.testing import LocalChain

KEY = bytes(range(32))
MAX_FRAME = 1024


def _nonce(counter: int) -> bytes:
    return struct.pack("<Q", counter) + b"\x00\x00\x00\x00"


def _frame(aead: ChaCha20Poly1305, counter: int, payload: bytes) -> bytes:
    ciphertext = aead.encrypt(_nonce(counter), payload, None)
    return struct.pack(">I", len(ciphertext)) + ciphertext


class _Writer:
    """Collects what a connection writes; calls ``on_write`` with everything so far."""

    def __init__(self, on_write: Any = None) -> None:
        self.data = bytearray()
        self.on_write = on_write

    def write(self, data: bytes) -> None:
        self.data += data
        if self.on_write is not None:
            self.on_write(bytes(self.data))

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        return None


# --- Frames -------------------------------------------------------------------------------

_AEAD = ChaCha20Poly1305(KEY)
FRAME_SEEDS = [
    _frame(_AEAD, 0, b"hello") + _frame(_AEAD, 1, encode(["ping", 7])),
    _frame(_AEAD, 0, b""),
    _frame(_AEAD, 0, bytes(MAX_FRAME)),
]


async def _read_frames(stream: bytes) -> tuple[list[bytes], BaseException]:
    reader = asyncio.StreamReader()
    reader.feed_data(stream)
    reader.feed_eof()
    conn = SecureConnection(reader, _Writer(), KEY, KEY, max_frame=MAX_FRAME)  # type: ignore[arg-type]
    payloads = []
    while True:
        try:
            payloads.append(await conn.receive())
        except (FrameError, asyncio.IncompleteReadError) as exc:
            return payloads, exc


@fuzz(200)
@given(stream=fuzz_bytes(FRAME_SEEDS, cle=False))
def test_fuzz_frames_authenticate_or_stop_with_frame_error(stream: bytes) -> None:
    payloads, _ = asyncio.run(_read_frames(stream))
    read = b"".join(_frame(_AEAD, i, p) for i, p in enumerate(payloads))
    assert stream.startswith(read)


# --- The handshake's authentication message -----------------------------------------------

OURS = KeyPair.from_seed(b"o" * 32)
THEIRS = KeyPair.from_seed(b"t" * 32)
# Fixed ephemeral keys: the transcript, hence the peer's signature, is the same each run.
OUR_EPHEMERAL = X25519PrivateKey.from_private_bytes(b"\x11" * 32)
THEIR_EPHEMERAL = X25519PrivateKey.from_private_bytes(b"\x22" * 32)


def _raw(key: X25519PrivateKey) -> bytes:
    return secure._raw(key.public_key())


def _their_session() -> tuple[ChaCha20Poly1305, bytes]:
    """The peer's sending key and the transcript both sides sign."""
    mine, ours = _raw(THEIR_EPHEMERAL), _raw(OUR_EPHEMERAL)
    low, high = sorted((mine, ours))
    transcript = hashlib.sha256(DOMAIN_P2P + low + high).digest()
    keys = HKDF(
        algorithm=hashes.SHA256(), length=64, salt=transcript, info=b"civic-ledger/p2p/keys"
    ).derive(THEIR_EPHEMERAL.exchange(OUR_EPHEMERAL.public_key()))
    send_key = keys[:32] if mine == low else keys[32:]
    return ChaCha20Poly1305(send_key), transcript


THEIR_AEAD, TRANSCRIPT = _their_session()
AUTH_SEEDS = [
    encode(
        [
            THEIRS.public_key,
            THEIRS.sign(DOMAIN_P2P_AUTH + TRANSCRIPT),
            {"chain_id": "civic-test", "genesis_hash": bytes(32), "height": 3, "version": "0.1"},
        ]
    ),
    encode([THEIRS.public_key, THEIRS.sign(DOMAIN_P2P_AUTH + TRANSCRIPT), {}]),
]


async def _handshake_with(auth: bytes) -> Any:
    reader = asyncio.StreamReader()
    reader.feed_data(MAGIC + _raw(THEIR_EPHEMERAL) + _frame(THEIR_AEAD, 0, auth))
    reader.feed_eof()
    with mock.patch.object(secure.X25519PrivateKey, "generate", return_value=OUR_EPHEMERAL):
        return await handshake(reader, _Writer(), OURS, {}, max_frame=1 << 20)  # type: ignore[arg-type]


@fuzz(200)
@given(auth=fuzz_bytes(AUTH_SEEDS))
def test_fuzz_handshake_authentication_message(auth: bytes) -> None:
    try:
        conn = asyncio.run(_handshake_with(auth))
    except (HandshakeError, asyncio.IncompleteReadError):
        return
    assert encode([conn.peer_key, decode(auth)[1], conn.peer_hello]) == auth


def test_fuzz_handshake_seeds_pass() -> None:
    for auth in AUTH_SEEDS:
        assert asyncio.run(_handshake_with(auth)).peer_key == THEIRS.public_key


# --- Peer messages into a node's consensus driver -----------------------------------------

_BASE: list[LocalChain] = []


def _base() -> LocalChain:
    """The corpus chain's twin: same keys and genesis, so its blocks are valid here."""
    if not _BASE:
        _BASE.append(LocalChain())
    return _BASE[0]


async def _deliver(frame: bytes) -> None:
    base = _base()
    folder = Path(tempfile.mkdtemp(prefix="civic-fuzz-"))
    node = Node(folder, base.node.genesis, base.validator)
    now = base.node.genesis.time_ms + 60_000
    driver = ConsensusDriver(node, None, clock=lambda: now)
    peer = Peer(conn=None, key=THEIRS.public_key, outbound=False, address="fuzz", hello={})  # type: ignore[arg-type]
    try:
        await driver.start()
        try:
            msg_type, payload = decode_message(frame)
        except DecodeError:
            return
        # As the peer manager does: anything but a LedgerError is a bug.
        with contextlib.suppress(LedgerError):
            driver.on_message(peer, msg_type, payload)
    finally:
        await driver.stop()
        node.close()
        shutil.rmtree(folder, ignore_errors=True)


@fuzz(60)
@given(frame=st.deferred(lambda: fuzz_bytes(corpus().seeds["peer message"])))
def test_fuzz_peer_messages_to_a_node_raise_only_ledger_errors(frame: bytes) -> None:
    asyncio.run(_deliver(frame))
