"""The consensus shell: runs the Tendermint engine against the node, the peers and time.

It checks every incoming proposal and vote (shape, height, signature, sender) before the
engine sees it, carries out the engine's effects in order (a signature is recorded
durably before the message leaves), keeps the timers, paces heights (a block interval
after each commit, and no empty block before ``empty_block_interval_ms`` unless a peer
has started the height), gossips transactions, re-sends its own votes so that lost
messages are repaired, and fetches blocks from peers that are ahead (block sync).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any

from civicledger.chain.block import Block, Commit, decode_block, decode_commit
from civicledger.consensus.bft.engine import (
    Broadcast,
    Decide,
    Effect,
    Equivocation,
    ProposalEquivocation,
    RecordSigned,
    ScheduleTimeout,
    Tendermint,
    TimeoutConfig,
)
from civicledger.consensus.bft.messages import Proposal, SignedProposal, Vote
from civicledger.encoding import Value, decode, encode
from civicledger.errors import CorruptionError, DecodeError, LedgerError
from civicledger.metrics import Metrics
from civicledger.node.node import Node
from civicledger.p2p.peers import Peer, PeerManager
from civicledger.state.system import get_allowed_nodes

__all__ = ["PROPOSAL_EVIDENCE", "ConsensusDriver"]

#: The first item of an ``evidence`` message carrying two signed proposals.
PROPOSAL_EVIDENCE = "proposals"

log = logging.getLogger(__name__)

#: Most blocks one sync response carries, and most bytes.
SYNC_BATCH = 64
SYNC_MAX_BYTES = 8 * 1024 * 1024
SYNC_TIMEOUT = 5.0
#: Messages for the next height kept until we start it.
MAX_BUFFERED = 4_096
#: Most transactions in one gossip message; they are flushed at least this often (s).
TX_GOSSIP_BATCH = 512
TX_GOSSIP_INTERVAL = 0.01
TX_GOSSIP_MAX_BYTES = 4 * 1024 * 1024
#: Own votes and proposal are re-sent this often (s) while a height is undecided.
REBROADCAST_INTERVAL = 1.0
STATUS_INTERVAL = 1.0
VERIFIED_CACHE = 100_000
#: Gossiped transactions waiting for admission, at most; admitted this many at a time.
MAX_GOSSIP_BACKLOG = 50_000
GOSSIP_SLICE = 128


def encode_signed_record(record: RecordSigned, votes: Sequence[Vote] = ()) -> bytes:
    """``[height, round, step, locked_round, locked_block, valid_round, valid_block, votes]``
    with blocks as their encodings (empty bytes for none) and ``votes`` our own signed
    votes of that height (a restarted validator counts them again: without its own votes,
    a validator holding the quorum alone would wait forever in a round it cannot sign in
    again)."""
    return encode(
        [
            record.height,
            record.round,
            record.step,
            record.locked_round,
            record.locked_block.encoded if record.locked_block else b"",
            record.valid_round,
            record.valid_block.encoded if record.valid_block else b"",
            [vote.to_value() for vote in votes],
        ]
    )


def _decode_signed_record(raw: bytes) -> list[Value]:
    value = decode(raw)
    # Records written before own votes were kept have seven items.
    if not isinstance(value, list) or len(value) not in (7, 8):
        raise CorruptionError("the stored record of the last signature is damaged")
    return value


def load_signed_record(raw: bytes | None) -> RecordSigned | None:
    if raw is None:
        return None
    height, round_, step, locked_round, locked, valid_round, valid = _decode_signed_record(raw)[:7]
    if not all(isinstance(x, int) for x in (height, round_, step, locked_round, valid_round)):
        raise CorruptionError("the stored record of the last signature is damaged")
    if not isinstance(locked, bytes) or not isinstance(valid, bytes):
        raise CorruptionError("the stored record of the last signature is damaged")
    return RecordSigned(
        height,  # type: ignore[arg-type]
        round_,  # type: ignore[arg-type]
        step,  # type: ignore[arg-type]
        locked_round,  # type: ignore[arg-type]
        decode_block(locked) if locked else None,
        valid_round,  # type: ignore[arg-type]
        decode_block(valid) if valid else None,
    )


def load_signed_votes(raw: bytes | None) -> list[Vote]:
    """Our own votes kept with the record of the last signature (none in older records)."""
    if raw is None:
        return []
    value = _decode_signed_record(raw)
    if len(value) == 7:
        return []
    votes = value[7]
    if not isinstance(votes, list):
        raise CorruptionError("the stored record of the last signature is damaged")
    try:
        return [Vote.from_value(vote) for vote in votes]
    except DecodeError:
        raise CorruptionError("the stored record of the last signature is damaged") from None


def _describe(message: Proposal | Vote) -> str:
    if isinstance(message, Proposal):
        return f"h{message.height}/r{message.round} {len(message.block.transactions)} txs"
    target = message.block_hash.hex()[:8] or "nil"
    by = message.validator.hex()[:8]
    return f"{message.type} h{message.height}/r{message.round} {target} by {by}"


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class _App:
    """The engine's view of the node."""

    def __init__(self, driver: ConsensusDriver) -> None:
        self.driver = driver

    def build_proposal(self, height: int, round_: int) -> Block:
        return self.driver.node.build_block(self.driver.clock(), round_)

    def is_valid_block(self, block: Block) -> bool:
        return self.driver.node.is_valid_block(block, self.driver.clock())


class ConsensusDriver:
    def __init__(
        self,
        node: Node,
        peers: PeerManager | None,
        *,
        timeouts: TimeoutConfig | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.node = node
        self.peers = peers
        self.metrics = metrics or Metrics()
        self.clock = clock
        restored, self._restored_votes = self._load_signed()
        last = (restored.height, restored.round, restored.step) if restored else (0, -1, 0)
        if restored is not None and restored.height > node.head.height + 1:
            log.warning(
                "this validator signed at height %d but its database ends at block %d: "
                "blocks were lost (a damaged database?); they will be fetched from peers, "
                "and nothing at or below the last signature is signed again",
                restored.height,
                node.head.height,
            )
        self.engine = Tendermint(
            node.chain_id,
            _App(self),
            node.validator_key,
            timeouts,
            last_signed=last,
            restored=restored,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._buffer: list[tuple[str, Value]] = []
        self._own_messages: list[Proposal | Vote] = []
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._pending_txs: list[bytes] = []
        self._incoming: deque[bytes] = deque()
        self._incoming_ready = asyncio.Event()
        self._sync_requested_at = 0.0
        self._last_commit_ms = clock()
        self._start_handle: asyncio.TimerHandle | None = None
        self._height_started_ms = 0
        self._waiting_to_start = False
        self._tasks: list[asyncio.Task[None]] = []
        self.running = False
        node.on_admitted.append(self._on_admitted)

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.running = True
        self._schedule_height_start(delay_ms=0)
        self._tasks = [
            asyncio.create_task(self._periodic(REBROADCAST_INTERVAL, self._rebroadcast)),
            asyncio.create_task(self._periodic(STATUS_INTERVAL, self._send_status)),
            asyncio.create_task(self._periodic(TX_GOSSIP_INTERVAL, self._flush_txs)),
            asyncio.create_task(self._admit_gossip()),
        ]

    async def stop(self) -> None:
        self.running = False
        for timer in self._timers:
            timer.cancel()
        if self._start_handle is not None:
            self._start_handle.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _periodic(self, interval: float, action: Callable[[], None]) -> None:
        while self.running:
            await asyncio.sleep(interval)
            try:
                action()
            except Exception:
                log.exception("%s failed", action.__name__)

    # -- heights -------------------------------------------------------------------

    def _schedule_height_start(self, delay_ms: int) -> None:
        assert self._loop is not None
        if self._start_handle is not None:
            self._start_handle.cancel()
        self._waiting_to_start = True
        self._start_handle = self._loop.call_later(delay_ms / 1000, self._on_start_timer)

    def _on_start_timer(self) -> None:
        self._start_handle = None
        self._maybe_start_height()

    def _maybe_start_height(self) -> None:
        """Start the next height a block interval after the last commit, once there are
        transactions to include, a scheduled call falls due, or an empty block is due
        (``empty_block_interval_ms``; 0 means none). A peer's proposal or vote for the
        height starts it at once."""
        if not self._waiting_to_start or not self.running:
            return
        assert self._loop is not None
        params = self.node.genesis.params
        idle_ms = self.clock() - self._last_commit_ms
        if idle_ms >= params.block_interval_ms:
            empty = params.empty_block_interval_ms
            if (
                len(self.node.mempool)
                or self._buffer
                or (empty and idle_ms >= empty)
                or self.node.has_due_calls(self.clock())
            ):
                self._start_height()
                return
            delay = 0.05
        else:
            delay = max(0.001, (params.block_interval_ms - idle_ms) / 1000)
        # Look again later, unless a look is already scheduled.
        if self._start_handle is None:
            self._start_handle = self._loop.call_later(delay, self._on_start_timer)

    def _start_height(self) -> None:
        self._waiting_to_start = False
        if self._start_handle is not None:
            self._start_handle.cancel()
            self._start_handle = None
        self._own_messages = []
        self._height_started_ms = self.clock()
        height = self.node.next_height
        effects = self.engine.start_height(height, self.node.validators)
        self._execute(effects)
        # Our votes of this height from before a restart count again (and are re-sent).
        restored = [v for v in self._restored_votes if v.height == height]
        self._restored_votes = [v for v in self._restored_votes if v.height > height]
        for vote in restored:
            if self.node.next_height != height:
                break  # decided
            self._own_messages.append(vote)
            self._execute(self.engine.on_vote(vote))
        buffered, self._buffer = self._buffer, []
        for msg_type, payload in buffered:
            self._on_consensus_message(None, msg_type, payload)
        self.metrics.set("consensus_height", height)

    # -- effects -------------------------------------------------------------------

    def _execute(self, effects: list[Effect]) -> None:
        record: RecordSigned | None = None
        for effect in effects:
            if isinstance(effect, RecordSigned):
                # Written with the message it announces, before that message leaves.
                record = effect
                continue
            if isinstance(effect, Broadcast):
                if record is not None:
                    self._save_signed(record, effect.message)
                    record = None
                self._broadcast_own(effect.message)
                continue
            if record is not None:  # never the case: a signature follows its record
                self._save_signed(record, None)
                record = None
            if isinstance(effect, ScheduleTimeout):
                assert self._loop is not None
                self._timers.append(
                    self._loop.call_later(
                        effect.delay_ms / 1000,
                        self._on_timeout,
                        effect.kind,
                        effect.height,
                        effect.round,
                    )
                )
                self.metrics.set("consensus_round", self.engine.round)
            elif isinstance(effect, Decide):
                self._commit(effect.block, effect.commit)
                return  # the engine moved on; later effects belong to the old height
            elif isinstance(effect, Equivocation):
                self._on_equivocation(effect.first, effect.second)
            elif isinstance(effect, ProposalEquivocation):
                self._on_double_proposal(effect.first.signed(), effect.second.signed())
        if record is not None:
            self._save_signed(record, None)

    def _broadcast_own(self, message: Proposal | Vote) -> None:
        """Send our signed proposal or vote to every peer, and keep it to re-send."""
        self._own_messages.append(message)
        kind = "proposal" if isinstance(message, Proposal) else "vote"
        if log.isEnabledFor(logging.DEBUG):
            log.debug("sent %s %s", kind, _describe(message))
        if self.peers is not None:
            self.peers.broadcast(kind, message.to_value())

    def _load_signed(self) -> tuple[RecordSigned | None, list[Vote]]:
        """The record of our last signature (a restarted validator never signs at or
        below it again) and our own votes of its height (counted again)."""
        raw = self.node.signer_state.load()
        return load_signed_record(raw), load_signed_votes(raw)

    def _save_signed(self, record: RecordSigned, message: Proposal | Vote | None) -> None:
        """Record durably that we sign ``message``, with our votes of its height."""
        votes = [m for m in self._own_messages if isinstance(m, Vote) and m.height == record.height]
        if isinstance(message, Vote):
            votes.append(message)
        self.node.signer_state.save(encode_signed_record(record, votes))

    def _on_timeout(self, kind: int, height: int, round_: int) -> None:
        if not self.running:
            return
        self.metrics.inc("consensus_timeouts_total", step=str(kind))
        self._execute(self.engine.on_timeout(kind, height, round_))

    def _commit(self, block: Block, commit: Commit) -> None:
        try:
            self.node.commit_block(block, commit, self.clock())
        except Exception:
            # Never blame the peer whose vote completed the quorum; restart the height
            # after a pause (a transient storage error heals, and sync can repair).
            log.exception("cannot commit decided block %d; retrying the height", block.height)
            self.metrics.inc("commit_failures_total")
            for timer in self._timers:
                timer.cancel()
            self._timers = []
            self._schedule_height_start(1_000)
            return
        for timer in self._timers:
            timer.cancel()
        self._timers = []
        now = self.clock()
        log.info(
            "committed block %d (round %d, %d txs) %d ms after its height started",
            block.height,
            commit.round,
            len(block.transactions),
            now - self._height_started_ms,
        )
        self._last_commit_ms = now
        self.metrics.inc("blocks_committed_total")
        self.metrics.set("head_height", block.height)
        self._send_status()
        self._enforce_allowlist()
        self._schedule_height_start(self.node.genesis.params.block_interval_ms)

    def _enforce_allowlist(self) -> None:
        """Drop peers that governance removed from the validators or the node allowlist."""
        if self.peers is None:
            return
        allowed = get_allowed_nodes(self.node.committed)
        for peer in list(self.peers.peers.values()):
            if peer.key not in allowed:
                self.peers.disconnect(peer, "no longer on the node allowlist")

    def _on_equivocation(self, first: Vote, second: Vote) -> None:
        self.metrics.inc("consensus_equivocations_total")
        log.warning(
            "validator %s signed two %ss at height %d round %d",
            first.validator.hex()[:16],
            first.type,
            first.height,
            first.round,
        )
        self.node.record_evidence(first, second)
        if self.peers is not None:
            self.peers.broadcast("evidence", [first.to_value(), second.to_value()])

    def _on_double_proposal(self, first: SignedProposal, second: SignedProposal) -> None:
        self.metrics.inc("consensus_equivocations_total")
        log.warning(
            "validator %s proposed two blocks at height %d round %d",
            first.proposer.hex()[:16],
            first.height,
            first.round,
        )
        self.node.record_proposal_evidence(first, second)
        if self.peers is not None:
            self.peers.broadcast(
                "evidence", [PROPOSAL_EVIDENCE, first.to_value(), second.to_value()]
            )

    # -- messages ------------------------------------------------------------------

    def on_message(self, peer: Peer, msg_type: str, payload: Value) -> None:
        try:
            if msg_type in ("proposal", "vote"):
                self._on_consensus_message(peer, msg_type, payload)
            elif msg_type == "txs":
                self._on_txs(peer, payload)
            elif msg_type == "status":
                self._on_status(peer, payload)
            elif msg_type == "get_blocks":
                self._on_get_blocks(peer, payload)
            elif msg_type == "blocks":
                self._on_blocks(peer, payload)
            elif msg_type == "evidence":
                self._on_evidence(peer, payload)
            else:
                self.metrics.inc("p2p_bad_messages_total", reason="unknown_type")
        except DecodeError as exc:
            self.metrics.inc("p2p_bad_messages_total", reason=f"bad_{msg_type}"[:40])
            log.debug("bad %s from peer: %s", msg_type, exc)

    def on_connect(self, peer: Peer) -> None:
        self._send_status_to(peer)
        if self.peers is not None and not self._waiting_to_start:
            for message in self._own_messages:
                kind = "proposal" if isinstance(message, Proposal) else "vote"
                self.peers.send(peer, kind, message.to_value())

    def _seen(self, signature: bytes) -> bool:
        if signature in self._verified:
            return True
        self._verified[signature] = None
        if len(self._verified) > VERIFIED_CACHE:
            self._verified.popitem(last=False)
        return False

    def _on_consensus_message(self, peer: Peer | None, msg_type: str, payload: Value) -> None:
        # A message already seen (gossip repeats) costs a lookup, not a decode.
        if (
            isinstance(payload, list)
            and payload
            and isinstance(payload[-1], bytes)
            and payload[-1] in self._verified
            and not self._waiting_to_start
        ):
            return
        message: Proposal | Vote
        if msg_type == "proposal":
            # Transactions our mempool holds are reused, not decoded again.
            message = Proposal.from_value(payload, self.node.mempool.get)
        else:
            message = Vote.from_value(payload)
        height = message.height
        next_height = self.node.next_height
        if height < next_height:
            return  # decided already
        if height > next_height:
            if peer is not None:
                self._request_sync(peer)
            return
        # A duplicate costs a dictionary lookup, not a signature check.
        if self._seen(message.signature):
            return
        if not message.is_signature_valid(self.node.chain_id):
            self._verified.pop(message.signature, None)
            self.metrics.inc("consensus_bad_signatures_total")
            if peer is not None and self.peers is not None:
                self.peers.disconnect(peer, "sent a badly signed consensus message")
            return
        if self._waiting_to_start:
            if len(self._buffer) < MAX_BUFFERED:
                self._buffer.append((msg_type, payload))
            self._verified.pop(message.signature, None)  # re-checked when replayed
            # Someone has started this height: so do we.
            self._start_height()
            return
        if log.isEnabledFor(logging.DEBUG):
            log.debug("received %s %s", msg_type, _describe(message))
        if isinstance(message, Proposal):
            effects = self.engine.on_proposal(message)
        else:
            effects = self.engine.on_vote(message)
        self._execute(effects)

    def _rebroadcast(self) -> None:
        """Re-send our votes of this height (cheap), repairing messages lost to a full
        queue or a broken link; a proposal is re-sent to a peer when it (re)connects."""
        if self.peers is None or self._waiting_to_start:
            return
        for message in self._own_messages[-16:]:
            if isinstance(message, Vote):
                self.peers.broadcast("vote", message.to_value())

    # -- transactions --------------------------------------------------------------

    def _on_admitted(self, raw: bytes) -> None:
        self._pending_txs.append(raw)
        if len(self._pending_txs) >= TX_GOSSIP_BATCH:
            self._flush_txs()
        if self._waiting_to_start:
            self._maybe_start_height()

    def _flush_txs(self) -> None:
        pending, self._pending_txs = self._pending_txs, []
        batch: list[Value] = []
        size = 0
        for raw in pending:
            # Batches stay far below the frame limit, whatever the transactions' sizes.
            if batch and size + len(raw) > TX_GOSSIP_MAX_BYTES:
                self._send_txs(batch)
                batch, size = [], 0
            batch.append(raw)
            size += len(raw)
        if batch:
            self._send_txs(batch)

    def _send_txs(self, batch: list[Value]) -> None:
        if self.peers is not None:
            self.peers.broadcast("txs", batch)

    def _on_txs(self, peer: Peer, payload: Value) -> None:
        """Queue gossiped transactions; ``_admit_gossip`` admits them in slices, so that
        consensus messages never wait behind a burst of transactions."""
        if not isinstance(payload, list) or len(payload) > 4 * TX_GOSSIP_BATCH:
            raise DecodeError("txs must be a list of at most 2048 transactions")
        if not all(isinstance(raw, bytes) for raw in payload):
            raise DecodeError("a gossiped transaction must be bytes")
        room = MAX_GOSSIP_BACKLOG - len(self._incoming)
        if room < len(payload):
            self.metrics.inc("mempool_gossip_dropped_total", len(payload) - max(room, 0))
        self._incoming.extend(payload[: max(room, 0)])  # type: ignore[arg-type]
        self._incoming_ready.set()

    async def _admit_gossip(self) -> None:
        while self.running:
            await self._incoming_ready.wait()
            self._incoming_ready.clear()
            while self._incoming:
                # A slice at a time, its signatures checked together off the event loop
                # (which goes on with consensus messages meanwhile).
                count = min(GOSSIP_SLICE, len(self._incoming))
                batch = [self._incoming.popleft() for _ in range(count)]
                try:
                    admission = self.node.begin_admission(batch)
                    signed = await self.node.verify_async(admission.to_verify)
                    outcome = self.node.end_admission_quietly(admission, signed)
                except Exception:
                    log.exception("admitting gossiped transactions failed")
                    outcome = []
                for refused in outcome:
                    # Duplicates are normal in gossip; anything else is counted.
                    if refused is not None and refused.code != "duplicate":
                        self.metrics.inc("mempool_gossip_rejected_total", reason=refused.code)
                if self._waiting_to_start:
                    self._maybe_start_height()
                await asyncio.sleep(0)  # let consensus messages and the API in

    # -- block sync ----------------------------------------------------------------

    def _send_status(self) -> None:
        if self.peers is not None:
            head = self.node.head
            self.peers.broadcast("status", [head.height, head.hash])

    def _send_status_to(self, peer: Peer) -> None:
        if self.peers is not None:
            head = self.node.head
            self.peers.send(peer, "status", [head.height, head.hash])

    def _on_status(self, peer: Peer, payload: Value) -> None:
        if not isinstance(payload, list) or len(payload) != 2 or not isinstance(payload[0], int):
            raise DecodeError("status is [height, hash]")
        peer.height = payload[0]
        if peer.height > self.node.head.height:
            self._request_sync(peer)

    def _request_sync(self, peer: Peer) -> None:
        now = time.monotonic()
        if now - self._sync_requested_at < SYNC_TIMEOUT / 10 or self.peers is None:
            return
        self._sync_requested_at = now
        self.peers.send(peer, "get_blocks", [self.node.head.height + 1, SYNC_BATCH])

    def _on_get_blocks(self, peer: Peer, payload: Value) -> None:
        if (
            not isinstance(payload, list)
            or len(payload) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in payload)
        ):
            raise DecodeError("get_blocks is [from_height, count]")
        start, count = payload
        assert isinstance(start, int) and isinstance(count, int)
        if start < 1 or count < 1:
            raise DecodeError("get_blocks needs a height >= 1 and a count >= 1")
        count = min(count, SYNC_BATCH)  # a huge range is answered with one batch
        blocks: list[Value] = []
        size = 0
        for height in range(start, min(start + count, self.node.head.height + 1)):
            block, commit = self.node.get_block(height)
            if commit is None:
                break
            entry = [block.encoded, commit.encoded]
            size += len(block.encoded) + len(commit.encoded)
            if blocks and size > SYNC_MAX_BYTES:
                break
            blocks.append(entry)  # type: ignore[arg-type]
        if self.peers is not None:
            self.peers.send(peer, "blocks", blocks)

    def _on_blocks(self, peer: Peer, payload: Value) -> None:
        if not isinstance(payload, list) or len(payload) > SYNC_BATCH:
            raise DecodeError(f"blocks is a list of at most {SYNC_BATCH} [block, commit] pairs")
        applied = 0
        try:
            for entry in payload:
                try:
                    if not isinstance(entry, list) or len(entry) != 2:
                        raise DecodeError("a synced block is a [block, commit] pair")
                    raw_block, raw_commit = entry
                    if not isinstance(raw_block, bytes) or not isinstance(raw_commit, bytes):
                        raise DecodeError("a synced block and commit are bytes")
                    block = decode_block(raw_block, self.node.mempool.get)
                    commit = decode_commit(raw_commit)
                    if block.height <= self.node.head.height:
                        continue
                    self.node.apply_synced_block(block, commit)
                except LedgerError as exc:
                    # Certificates are checked before execution: a bad block is the
                    # peer's doing, not an honest disagreement.
                    self.metrics.inc("sync_bad_blocks_total")
                    log.warning("peer %s served a bad block: %s", peer.name, exc)
                    if self.peers is not None:
                        self.peers.disconnect(peer, "served a bad block")
                    return
                applied += 1
        finally:
            if applied:
                self._after_sync(peer, applied)

    def _after_sync(self, peer: Peer, applied: int) -> None:
        self.metrics.inc("sync_blocks_total", applied)
        log.info("synced to height %d", self.node.head.height)
        self._sync_requested_at = 0.0
        # Whatever height we were deciding is decided: start the next one.
        for timer in self._timers:
            timer.cancel()
        self._timers = []
        self._last_commit_ms = self.clock()
        self._enforce_allowlist()
        self._start_height()
        if peer.height > self.node.head.height and not peer.closed.is_set():
            self._request_sync(peer)

    # -- evidence ------------------------------------------------------------------

    def _on_evidence(self, peer: Peer, payload: Value) -> None:
        if isinstance(payload, list) and len(payload) == 3 and payload[0] == PROPOSAL_EVIDENCE:
            self._on_proposal_evidence(peer, payload[1], payload[2])
            return
        if not isinstance(payload, list) or len(payload) != 2:
            raise DecodeError('evidence is [vote, vote] or ["proposals", proposal, proposal]')
        first, second = Vote.from_value(payload[0]), Vote.from_value(payload[1])
        # Only proof that checks out is acted on (each costs a transaction).
        if not (
            first.validator == second.validator
            and (first.height, first.round, first.type)
            == (second.height, second.round, second.type)
            and first.block_hash != second.block_hash
            and first.is_signature_valid(self.node.chain_id)
            and second.is_signature_valid(self.node.chain_id)
        ):
            self._false_evidence(peer)
            return
        self.node.record_evidence(first, second)

    def _on_proposal_evidence(self, peer: Peer, raw_first: Value, raw_second: Value) -> None:
        first = SignedProposal.from_value(raw_first)
        second = SignedProposal.from_value(raw_second)
        if not (
            first.conflicts_with(second)
            and first.is_signature_valid(self.node.chain_id)
            and second.is_signature_valid(self.node.chain_id)
        ):
            self._false_evidence(peer)
            return
        self.node.record_proposal_evidence(first, second)

    def _false_evidence(self, peer: Peer) -> None:
        self.metrics.inc("p2p_bad_messages_total", reason="bad_evidence")
        if self.peers is not None:
            self.peers.disconnect(peer, "sent false evidence")

    def status(self) -> dict[str, Any]:
        return {
            "height": self.engine.height,
            "round": self.engine.round,
            "step": self.engine.step,
            "peers": len(self.peers.peers) if self.peers else 0,
        }
