"""The secure channel in process: handshake, frames, limits."""

from __future__ import annotations

import asyncio
import struct

import pytest

from civicledger.crypto.keys import KeyPair
from civicledger.errors import LedgerError
from civicledger.p2p.secure import MAGIC, MAX_HELLO, HandshakeError, handshake

A = KeyPair.from_seed(b"A" * 32)
B = KeyPair.from_seed(b"B" * 32)


async def _pair():
    server_side: asyncio.Future = asyncio.get_running_loop().create_future()

    async def on_connect(reader, writer):
        server_side.set_result((reader, writer))

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = await asyncio.open_connection("127.0.0.1", port)
    reader, writer = await server_side
    return server, client, (reader, writer)


def test_both_sides_learn_each_others_key_and_exchange_frames():
    async def scenario():
        server, (cr, cw), (sr, sw) = await _pair()
        a, b = await asyncio.gather(
            handshake(cr, cw, A, {"who": "a"}, max_frame=1 << 16),
            handshake(sr, sw, B, {"who": "b"}, max_frame=1 << 16),
        )
        assert a.peer_key == B.public_key and b.peer_key == A.public_key
        assert a.peer_hello == {"who": "b"} and b.peer_hello == {"who": "a"}
        await a.send(b"hello")
        assert await b.receive() == b"hello"
        await b.send(b"x" * 1000)
        assert await a.receive() == b"x" * 1000
        # A frame over the limit is refused before it is sent.
        with pytest.raises(LedgerError):
            await a.send(b"y" * (1 << 16 + 1))
        a.close()
        b.close()
        server.close()

    asyncio.run(scenario())


def test_a_large_first_frame_is_refused_before_authentication():
    async def scenario():
        server, (cr, cw), (sr, sw) = await _pair()
        victim = asyncio.create_task(handshake(sr, sw, B, {}, max_frame=20 << 20))
        # Speak the opening correctly, then announce a frame far above the hello limit.
        cw.write(MAGIC + bytes(range(32)))
        await cw.drain()
        await cr.readexactly(len(MAGIC) + 32)
        cw.write(struct.pack(">I", MAX_HELLO + 1024))
        await cw.drain()
        with pytest.raises(LedgerError):
            await asyncio.wait_for(victim, 5)
        cw.close()
        sw.close()
        server.close()

    asyncio.run(scenario())


def test_garbage_opening_is_a_handshake_error():
    async def scenario():
        server, (_cr, cw), (sr, sw) = await _pair()
        victim = asyncio.create_task(handshake(sr, sw, B, {}, max_frame=1 << 16))
        cw.write(b"GET / HTTP/1.1\r\n" + b"\x00" * 40)
        await cw.drain()
        with pytest.raises(HandshakeError):
            await asyncio.wait_for(victim, 5)
        cw.close()
        sw.close()
        server.close()

    asyncio.run(scenario())


class _Impostor:
    """Claims A's public key but can only sign with B's private key."""

    public_key = A.public_key

    def sign(self, message: bytes) -> bytes:
        return B.sign(message)


def test_a_peer_that_cannot_sign_for_its_key_is_refused():
    async def scenario():
        server, (cr, cw), (sr, sw) = await _pair()
        victim = asyncio.create_task(handshake(sr, sw, B, {}, max_frame=1 << 16))
        impostor = asyncio.create_task(
            handshake(cr, cw, _Impostor(), {}, max_frame=1 << 16)  # type: ignore[arg-type]
        )
        with pytest.raises(HandshakeError, match="could not prove"):
            await asyncio.wait_for(victim, 5)
        impostor.cancel()
        cw.close()
        sw.close()
        server.close()

    asyncio.run(scenario())
