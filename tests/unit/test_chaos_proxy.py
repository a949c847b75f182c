"""The chaos proxy between two real secure p2p endpoints on loopback, in one event loop.

A listener and a dialer run the node's own handshake (``p2p/secure.py``) through a
``ProxyNetwork``: frames pass; a dropped or duplicated frame is detected by the receiver
(authentication fails or the stream ends); a partition refuses new connections and cuts
open ones; a delay holds frames.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from civicledger.chaos.manifest import Fault
from civicledger.chaos.proxy import ProxyNetwork
from civicledger.crypto.keys import KeyPair
from civicledger.p2p.secure import FrameError, SecureConnection, handshake

SERVER_KEY = KeyPair.from_seed(b"s" * 32)
CLIENT_KEY = KeyPair.from_seed(b"c" * 32)
MAX_FRAME = 1 << 20


class Pair:
    """Node 1 listens; node 0 dials it through the proxy (0, 1)."""

    def __init__(self) -> None:
        self.accepted: asyncio.Queue[SecureConnection] = asyncio.Queue()
        self.opened: list[SecureConnection] = []

    async def __aenter__(self) -> Pair:
        async def on_inbound(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = await handshake(reader, writer, SERVER_KEY, {}, max_frame=MAX_FRAME)
            await self.accepted.put(conn)

        self.server = await asyncio.start_server(on_inbound, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.proxies = ProxyNetwork([0, port], seed=1)
        await self.proxies.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for conn in self.opened:
            conn.close()
        await self.proxies.stop()
        self.server.close()
        await self.server.wait_closed()
        await asyncio.sleep(0)

    async def dial(self) -> tuple[SecureConnection, SecureConnection]:
        host, port = self.proxies.peers_of(0)[0].split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        client = await handshake(reader, writer, CLIENT_KEY, {}, max_frame=MAX_FRAME)
        server = await asyncio.wait_for(self.accepted.get(), 5)
        self.opened += [client, server]
        return client, server


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))  # type: ignore[arg-type]


def test_chaos_proxy_forwards_frames_both_ways() -> None:
    async def scenario() -> None:
        async with Pair() as pair:
            client, server = await pair.dial()
            for i in range(20):
                await client.send(b"ping %d" % i)
                assert await server.receive() == b"ping %d" % i
                await server.send(b"pong")
                assert await client.receive() == b"pong"
            assert pair.proxies.total().frames >= 42

    run(scenario())


@pytest.mark.parametrize("kind", ["drop", "duplicate"])
def test_chaos_proxy_drop_and_duplicate_are_detected_by_the_receiver(kind: str) -> None:
    async def scenario() -> None:
        async with Pair() as pair:
            client, server = await pair.dial()
            fault = Fault(kind, 0.0, None, probability=1.0)
            pair.proxies.add_fault(fault)
            await client.send(b"first")
            while not (pair.proxies.total().dropped or pair.proxies.total().duplicated):
                await asyncio.sleep(0.01)
            pair.proxies.remove_fault(fault)
            await client.send(b"second")
            if kind == "drop":
                # "first" never arrives; "second" carries the wrong counter.
                with pytest.raises(FrameError):
                    await server.receive()
            else:
                assert await server.receive() == b"first"
                with pytest.raises(FrameError):
                    await server.receive()  # the copy of "first" fails authentication
            stats = pair.proxies.total()
            assert (stats.dropped if kind == "drop" else stats.duplicated) >= 1

    run(scenario())


def test_chaos_proxy_partition_cuts_and_refuses() -> None:
    async def scenario() -> None:
        async with Pair() as pair:
            client, server = await pair.dial()
            pair.proxies.set_partition(((0,), (1,)))
            with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
                await server.receive()
            with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
                await pair.dial()
            assert pair.proxies.total().refused == 1
            pair.proxies.set_partition(())
            client, server = await pair.dial()
            await client.send(b"healed")
            assert await server.receive() == b"healed"

    run(scenario())


def test_chaos_proxy_delay_holds_frames_in_order() -> None:
    async def scenario() -> None:
        async with Pair() as pair:
            client, server = await pair.dial()
            pair.proxies.add_fault(Fault("delay", 0.0, None, delay_ms=150, jitter_ms=50))
            started = time.monotonic()
            for i in range(5):
                await client.send(b"%d" % i)
            assert [await server.receive() for _ in range(5)] == [b"0", b"1", b"2", b"3", b"4"]
            assert time.monotonic() - started >= 0.1

    run(scenario())
