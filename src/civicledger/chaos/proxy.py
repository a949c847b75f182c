"""A userspace fault layer: one TCP proxy on every directed link between nodes.

Node ``i`` dials node ``j`` through the proxy ``(i, j)`` (its ``[p2p] peers`` point at the
proxies), so every byte between two nodes crosses one proxy, in both directions. No
kernel support is needed (no netem, no iptables): it runs in the chaos runner's event loop.

The proxy understands the framing of ``p2p/secure.py``: the 40-byte handshake opening in
clear, then frames of a 4-byte big-endian length and an AEAD ciphertext. It acts on whole
frames:

- **partition** (groups): links between groups are cut (open connections closed, new ones
  closed at once), as a real partition with fast failure detection would.
- **delay** (ms, jitter): each frame is held for ``delay ± jitter`` ms, order kept, as on
  a slow link.
- **drop** and **duplicate** (probability per frame): the links are encrypted with a
  counter nonce per direction, so a missing or repeated frame fails authentication at the
  receiver, which closes the connection and dials again. On this network these faults
  therefore exercise detection and reconnection (and whatever a node loses while
  reconnecting), not silent message loss as on UDP.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import struct
import time
from dataclasses import dataclass, field

from civicledger.chaos.manifest import Fault
from civicledger.p2p.secure import MAGIC

__all__ = ["LinkStats", "ProxyNetwork"]

OPENING = len(MAGIC) + 32
#: Refuse to buffer frames above the node's own limit (20 MiB) plus the tag.
MAX_FRAME = 20 * 1024 * 1024 + 16


@dataclass(slots=True)
class LinkStats:
    connections: int = 0
    refused: int = 0
    cut: int = 0
    frames: int = 0
    dropped: int = 0
    duplicated: int = 0
    delayed: int = 0

    def add(self, other: LinkStats) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(eq=False, slots=True)
class _Connection:
    link: tuple[int, int]
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
        for task in self.tasks:
            task.cancel()


class ProxyNetwork:
    """Proxies for every ordered pair of ``count`` nodes whose p2p ports are ``targets``."""

    def __init__(self, targets: list[int], *, seed: int, host: str = "127.0.0.1") -> None:
        self.targets = targets
        self.host = host
        self.random = random.Random(seed)
        self.ports: dict[tuple[int, int], int] = {}
        self.stats: dict[tuple[int, int], LinkStats] = {}
        self._servers: list[asyncio.Server] = []
        self._connections: set[_Connection] = set()
        self._groups: tuple[tuple[int, ...], ...] = ()
        self._faults: list[Fault] = []

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        count = len(self.targets)
        for i in range(count):
            for j in range(count):
                if i == j:
                    continue
                link = (i, j)
                self.stats[link] = LinkStats()
                server = await asyncio.start_server(
                    functools.partial(self._on_connect, link), self.host, 0
                )
                self.ports[link] = server.sockets[0].getsockname()[1]
                self._servers.append(server)

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for conn in list(self._connections):
            conn.close()
        self._connections.clear()

    def peers_of(self, node: int) -> tuple[str, ...]:
        """What node ``node`` should dial: its proxies to every other node."""
        return tuple(
            f"{self.host}:{self.ports[(node, j)]}" for j in range(len(self.targets)) if j != node
        )

    def total(self) -> LinkStats:
        out = LinkStats()
        for stats in self.stats.values():
            out.add(stats)
        return out

    # -- faults --------------------------------------------------------------------

    def set_partition(self, groups: tuple[tuple[int, ...], ...]) -> None:
        """Cut every link between groups (``()`` heals)."""
        self._groups = groups
        for conn in list(self._connections):
            if self.is_cut(*conn.link):
                self.stats[conn.link].cut += 1
                conn.close()

    def add_fault(self, fault: Fault) -> None:
        self._faults.append(fault)

    def remove_fault(self, fault: Fault) -> None:
        with contextlib.suppress(ValueError):
            self._faults.remove(fault)

    def is_cut(self, a: int, b: int) -> bool:
        if not self._groups:
            return False
        group_of = {n: g for g, members in enumerate(self._groups) for n in members}
        return group_of.get(a) != group_of.get(b)

    def _active(self, link: tuple[int, int], kind: str) -> list[Fault]:
        a, b = link
        return [
            f
            for f in self._faults
            if f.kind == kind and (not f.nodes or a in f.nodes or b in f.nodes)
        ]

    def _delay_s(self, link: tuple[int, int]) -> float:
        total = 0.0
        for f in self._active(link, "delay"):
            total += max(0.0, f.delay_ms + self.random.uniform(-f.jitter_ms, f.jitter_ms))
        return total / 1000.0

    def _happens(self, link: tuple[int, int], kind: str) -> bool:
        return any(self.random.random() < f.probability for f in self._active(link, kind))

    # -- forwarding ----------------------------------------------------------------

    async def _on_connect(
        self, link: tuple[int, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        stats = self.stats[link]
        if self.is_cut(*link):
            stats.refused += 1
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.host, self.targets[link[1]], limit=2**16
            )
        except OSError:
            stats.refused += 1
            writer.close()
            return
        stats.connections += 1
        conn = _Connection(link, [writer, up_writer])
        self._connections.add(conn)
        pumps = [
            asyncio.create_task(self._pump(conn, reader, up_writer)),
            asyncio.create_task(self._pump(conn, up_reader, writer)),
        ]
        conn.tasks += pumps
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        conn.close()
        self._connections.discard(conn)

    async def _pump(
        self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Forward one direction frame by frame, applying the faults active on the link."""
        link = conn.link
        stats = self.stats[link]
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        conn.tasks.append(asyncio.create_task(self._send(queue, writer)))
        last_release = 0.0
        try:
            opening = await reader.readexactly(OPENING)
            queue.put_nowait((0.0, opening))
            while True:
                header = await reader.readexactly(4)
                (length,) = struct.unpack(">I", header)
                if length > MAX_FRAME:
                    return
                frame = header + await reader.readexactly(length)
                stats.frames += 1
                if self._happens(link, "drop"):
                    stats.dropped += 1
                    continue
                copies = 1
                if self._happens(link, "duplicate"):
                    stats.duplicated += 1
                    copies = 2
                delay = self._delay_s(link)
                if delay > 0:
                    stats.delayed += 1
                release = max(last_release, time.monotonic() + delay) if delay else last_release
                last_release = release
                for _ in range(copies):
                    queue.put_nowait((release, frame))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            return
        finally:
            queue.put_nowait(None)

    @staticmethod
    async def _send(
        queue: asyncio.Queue[tuple[float, bytes] | None], writer: asyncio.StreamWriter
    ) -> None:
        while True:
            item = await queue.get()
            if item is None:
                writer.close()
                return
            release, data = item
            wait = release - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                writer.write(data)
                await writer.drain()
            except (ConnectionError, OSError):
                return
