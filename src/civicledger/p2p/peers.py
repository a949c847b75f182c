"""The peer set: listening, dialling with backoff, heartbeats, bounded queues, dispatch.

Every link is a ``SecureConnection``. A peer must pass the handshake, be on the
allowlist, and name our chain id and genesis hash, or it is dropped. Each peer has one
bounded send queue (messages beyond it are dropped and counted: consensus and sync
re-send what matters) and is disconnected when nothing arrives from it for
``idle_timeout`` seconds: a partitioned TCP link can stall silently, so liveness never
waits for a TCP error. When two nodes dial each other, both keep the connection opened
by the node with the lower key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from civicledger.crypto.keys import KeyPair, compute_address
from civicledger.encoding import Value, decode, encode
from civicledger.errors import DecodeError, LedgerError
from civicledger.metrics import Metrics
from civicledger.p2p.secure import HandshakeError, SecureConnection, handshake
from civicledger.types import PublicKey

__all__ = ["P2PConfig", "Peer", "PeerManager", "decode_message"]

log = logging.getLogger(__name__)


def decode_message(frame: bytes, max_size: int | None = None) -> tuple[str, Value]:
    """Decode a peer message, the canonical encoding of a ``[type, payload]`` pair;
    raise ``DecodeError`` otherwise."""
    message = decode(frame, max_size=max_size)
    if not isinstance(message, list) or len(message) != 2 or not isinstance(message[0], str):
        raise DecodeError("a message is a [type, payload] pair")
    return message[0], message[1]


@dataclass(frozen=True, slots=True)
class P2PConfig:
    host: str = "127.0.0.1"
    port: int = 26656
    #: Addresses (``host:port``) to dial.
    peers: tuple[str, ...] = ()
    max_frame: int = 20 * 1024 * 1024
    handshake_timeout: float = 5.0
    ping_interval: float = 1.0
    idle_timeout: float = 6.0
    max_queue_messages: int = 4_096
    max_queue_bytes: int = 64 * 1024 * 1024
    max_peers: int = 64
    backoff_min: float = 0.2
    backoff_max: float = 5.0


@dataclass(eq=False, slots=True)
class Peer:
    conn: SecureConnection
    key: PublicKey
    outbound: bool
    address: str
    hello: dict[str, Value]
    queue: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    queued_bytes: int = 0
    last_received: float = field(default_factory=time.monotonic)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    #: The peer's last announced head height.
    height: int = -1
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return compute_address(self.key).hex()[:12]


class PeerManager:
    def __init__(
        self,
        node_key: KeyPair,
        config: P2PConfig,
        *,
        hello: Callable[[], dict[str, Value]],
        check_hello: Callable[[PublicKey, dict[str, Value]], None],
        on_message: Callable[[Peer, str, Value], None],
        on_connect: Callable[[Peer], None] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.node_key = node_key
        self.config = config
        self._hello = hello
        self._check_hello = check_hello
        self._on_message = on_message
        self._on_connect = on_connect
        self.metrics = metrics or Metrics()
        self.peers: dict[PublicKey, Peer] = {}
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        self._running = True
        self._server = await asyncio.start_server(
            self._on_inbound, self.config.host, self.config.port, limit=2**16
        )
        for address in self.config.peers:
            self._tasks.append(asyncio.create_task(self._dial_loop(address)))
        self._tasks.append(asyncio.create_task(self._watchdog()))

    async def stop(self) -> None:
        self._running = False
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        for peer in list(self.peers.values()):
            self._drop(peer, "shutting down")
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- sending -------------------------------------------------------------------

    def send(self, peer: Peer, msg_type: str, payload: Value) -> bool:
        return self.send_raw(peer, encode([msg_type, payload]))

    def send_raw(self, peer: Peer, frame: bytes) -> bool:
        if peer.closed.is_set():
            return False
        if (
            peer.queue.qsize() >= self.config.max_queue_messages
            or peer.queued_bytes + len(frame) > self.config.max_queue_bytes
        ):
            self.metrics.inc("p2p_send_dropped_total")
            return False
        peer.queued_bytes += len(frame)
        peer.queue.put_nowait(frame)
        return True

    def broadcast(self, msg_type: str, payload: Value, *, exclude: Peer | None = None) -> int:
        frame = encode([msg_type, payload])
        sent = 0
        for peer in list(self.peers.values()):
            if peer is not exclude and self.send_raw(peer, frame):
                sent += 1
        return sent

    # -- connections ---------------------------------------------------------------

    async def _on_inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self.peers) >= self.config.max_peers:
            self.metrics.inc("p2p_rejected_total", reason="too_many_peers")
            writer.close()
            return
        peername = writer.get_extra_info("peername")
        if not peername:
            writer.close()  # reset before we could look at it
            return
        address = f"{peername[0]}:{peername[1]}"
        await self._establish(reader, writer, outbound=False, address=address)

    async def _dial_loop(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        backoff = self.config.backoff_min
        while self._running:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, int(port), limit=2**16),
                    self.config.handshake_timeout,
                )
            except (OSError, TimeoutError, ValueError):
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self.config.backoff_max)
                continue
            peer = await self._establish(reader, writer, outbound=True, address=address)
            if peer is None:
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self.config.backoff_max)
                continue
            backoff = self.config.backoff_min
            await peer.closed.wait()
            await asyncio.sleep(self.config.backoff_min)

    async def _establish(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        outbound: bool,
        address: str,
    ) -> Peer | None:
        try:
            conn = await asyncio.wait_for(
                handshake(
                    reader, writer, self.node_key, self._hello(), max_frame=self.config.max_frame
                ),
                self.config.handshake_timeout,
            )
            self._check_hello(conn.peer_key, conn.peer_hello)
        except (HandshakeError, LedgerError) as exc:
            self.metrics.inc("p2p_rejected_total", reason=exc.code)
            log.info("rejected peer %s: %s", address, exc)
            writer.close()
            return None
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            self.metrics.inc("p2p_rejected_total", reason="handshake_io")
            log.debug("handshake with %s failed: %r", address, exc)
            writer.close()
            return None
        peer = Peer(conn, conn.peer_key, outbound, address, conn.peer_hello)
        existing = self.peers.get(peer.key)
        if existing is not None and not existing.closed.is_set():
            # Keep the connection opened by the node with the lower key (both sides agree);
            # between two of the same direction, the newer (the older may be stale).
            we_are_lower = self.node_key.public_key < peer.key
            keep_new = outbound == we_are_lower or existing.outbound != we_are_lower
            if not keep_new:
                conn.close()
                return None
            self._drop(existing, "replaced by a newer connection")
        self.peers[peer.key] = peer
        self.metrics.inc("p2p_connections_total")
        peer.tasks = [
            asyncio.create_task(self._reader(peer)),
            asyncio.create_task(self._writer(peer)),
        ]
        log.info("connected to peer %s at %s", peer.name, address)
        if self._on_connect is not None:
            self._on_connect(peer)
        return peer

    def _drop(self, peer: Peer, reason: str) -> None:
        if peer.closed.is_set():
            return
        peer.closed.set()
        log.info("disconnected from peer %s: %s", peer.name, reason)
        if self.peers.get(peer.key) is peer:
            del self.peers[peer.key]
        peer.conn.close()
        for task in peer.tasks:
            if task is not asyncio.current_task():
                task.cancel()

    def disconnect(self, peer: Peer, reason: str) -> None:
        """Drop a peer that misbehaved."""
        self.metrics.inc("p2p_peers_dropped_total", reason=reason)
        self._drop(peer, reason)

    async def _reader(self, peer: Peer) -> None:
        try:
            while True:
                frame = await peer.conn.receive()
                peer.last_received = time.monotonic()
                try:
                    msg_type, payload = decode_message(frame, self.config.max_frame)
                except DecodeError as exc:
                    self.metrics.inc("p2p_bad_messages_total", reason="malformed")
                    log.debug("malformed message from %s: %s", peer.name, exc)
                    continue
                if msg_type == "ping":
                    self.send(peer, "pong", payload)
                    continue
                if msg_type == "pong":
                    continue
                self._on_message(peer, msg_type, payload)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            self._drop(peer, "connection closed")
        except LedgerError as exc:
            self.metrics.inc("p2p_bad_messages_total", reason=exc.code)
            self._drop(peer, exc.message)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("handling a message from %s failed", peer.name)
            self._drop(peer, "internal error while handling its message")

    async def _writer(self, peer: Peer) -> None:
        try:
            while True:
                try:
                    frame = await asyncio.wait_for(peer.queue.get(), self.config.ping_interval)
                except TimeoutError:
                    frame = encode(["ping", int(time.monotonic() * 1000)])
                else:
                    peer.queued_bytes -= len(frame)
                await peer.conn.send(frame)
        except (ConnectionError, OSError, RuntimeError):
            self._drop(peer, "connection lost")
        except LedgerError as exc:
            self._drop(peer, exc.message)
        except asyncio.CancelledError:
            pass

    async def _watchdog(self) -> None:
        while self._running:
            await asyncio.sleep(self.config.ping_interval)
            now = time.monotonic()
            for peer in list(self.peers.values()):
                if now - peer.last_received > self.config.idle_timeout:
                    self.metrics.inc("p2p_peers_dropped_total", reason="idle")
                    self._drop(peer, f"silent for {self.config.idle_timeout} s")
