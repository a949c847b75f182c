"""An in-process network of Tendermint engines, with a fake clock and a fake network.

``Simulation`` runs ``n`` validators, each a ``Tendermint`` engine with a ``FakeApp``, and
carries out their effects itself: a broadcast becomes one delivery event per peer after a
seeded random delay (so messages get reordered), with optional drops, duplicates and
partitions; a timeout becomes an event on the fake clock; a decision is checked (the
commit must validate) and the next height starts after a fixed delay. Messages for a
height a node has not started yet are buffered and handed over when it starts it.

Like the node's consensus shell, the harness repairs lost messages: every
``gossip_interval_ms`` each live honest node sends every peer the messages of that
peer's current height that it knows and the peer has not received yet (the gossip the
paper assumes: a message received by a correct process eventually reaches every correct
process). And like its block sync, a node that stays behind a reachable honest peer for
``sync_after_ms`` copies the blocks it lacks and starts the next height (checked on the
gossip tick; ``None``: never, the engine alone must then finish every height it is at).

Faults: crashes and restarts (a restarted node gets a *new* engine built with its last
``RecordSigned``: ``last_signed`` and, through ``restored``, its lock; by default it is
caught up to the highest decided height), and Byzantine validators that double-sign votes
(optionally with extra votes for made-up blocks), double-propose, or stay silent. Hooks
crash a node right after a chosen record (before the message leaves) and drop chosen
messages on chosen links, to build exact schedules.

Everything that must hold in every run is checked as it happens and collected in
``Simulation.violations`` (``check_safety`` raises on any): no two honest nodes decide
different blocks at a height, every commit validates, every decided block was proposed
by a round's proposer and extends the decided chain, no honest validator signs at or below
its last record, no honest validator signs two different messages for one (height, round,
step).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from civicledger.chain.block import ZERO_HASH, Block, Commit, Header, Validator, ValidatorSet
from civicledger.consensus.bft.engine import (
    MAX_ROUNDS_AHEAD,
    STEP_PRECOMMIT,
    STEP_PREVOTE,
    STEP_PROPOSE,
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
from civicledger.consensus.bft.messages import NIL, PRECOMMIT, PREVOTE, Proposal, Vote
from civicledger.crypto.hashing import sha256
from civicledger.crypto.keys import KeyPair
from civicledger.errors import InvalidBlock
from civicledger.types import Address, Hash32, PublicKey

__all__ = [
    "CHAIN_ID",
    "DOUBLE_PROPOSE",
    "DOUBLE_SIGN",
    "GENESIS_HASH",
    "HONEST",
    "PRECOMMIT",
    "PREVOTE",
    "SILENT",
    "Decision",
    "FakeApp",
    "Message",
    "SimNode",
    "Simulation",
    "fast_timeouts",
    "make_block",
    "make_keys",
    "make_validator_set",
    "nil_or",
    "restarted_engine",
    "step_of",
]

CHAIN_ID = "civic-sim-1"
#: ``prev_hash`` of height 1.
GENESIS_HASH = ZERO_HASH

HONEST = "honest"
#: Sends each of its votes to one half of the peers and a conflicting vote to the other.
DOUBLE_SIGN = "double-sign"
#: Sends its proposal to one half of the peers and a different proposal to the other.
DOUBLE_PROPOSE = "double-propose"
#: Never runs (a validator crashed from the start); never restarted.
SILENT = "silent"

Message = Proposal | Vote


def fast_timeouts() -> TimeoutConfig:
    """Timeouts scaled to the harness's default delays (1-50 ms)."""
    return TimeoutConfig(
        propose_ms=300,
        propose_delta_ms=100,
        prevote_ms=150,
        prevote_delta_ms=50,
        precommit_ms=150,
        precommit_delta_ms=50,
    )


def make_keys(n: int, namespace: bytes = b"sim") -> list[KeyPair]:
    """``n`` deterministic keys, sorted by public key (index i is validator i of the set)."""
    keys = [KeyPair.from_seed(sha256(namespace + b"/validator/" + bytes([i]))) for i in range(n)]
    return sorted(keys, key=lambda k: k.public_key)


def make_validator_set(keys: list[KeyPair], powers: list[int] | None = None) -> ValidatorSet:
    powers = powers or [1] * len(keys)
    assert len(powers) == len(keys)
    return ValidatorSet.of([Validator(k.public_key, p) for k, p in zip(keys, powers, strict=True)])


def make_block(
    chain_id: str,
    height: int,
    round_: int,
    prev_hash: Hash32,
    proposer: Address,
    validators: ValidatorSet,
    salt: bytes = b"",
) -> Block:
    """A deterministic empty block; its roots differ per (proposer, height, round, salt)."""

    def root(tag: bytes) -> Hash32:
        return sha256(b"|".join([tag, proposer, str(height).encode(), str(round_).encode(), salt]))

    header = Header(
        chain_id=chain_id,
        height=height,
        prev_hash=prev_hash,
        time_ms=height * 1000 + round_,
        proposer=proposer,
        tx_root=root(b"tx"),
        state_root=root(b"state"),
        receipts_root=root(b"receipts"),
        validator_set_hash=validators.hash,
    )
    return Block(header, ())


def restarted_engine(
    chain_id: str,
    app: FakeApp,
    key: KeyPair,
    timeouts: TimeoutConfig,
    last_signed: tuple[int, int, int],
    last_record: RecordSigned | None,
) -> Tendermint:
    """A new engine for a restarted validator, given what it recorded durably: the last
    signed (height, round, step) and the last record itself (which carries its lock)."""
    return Tendermint(chain_id, app, key, timeouts, last_signed=last_signed, restored=last_record)


def step_of(message: Message) -> int:
    if isinstance(message, Proposal):
        return STEP_PROPOSE
    return STEP_PREVOTE if message.type == PREVOTE else STEP_PRECOMMIT


class FakeApp:
    """The engine's ``Application``: deterministic blocks on top of the node's decided chain."""

    def __init__(self, chain_id: str, address: Address, validators: ValidatorSet) -> None:
        self.chain_id = chain_id
        self.address = address
        self.validators = validators
        self.last_height = 0
        self.last_hash: Hash32 = GENESIS_HASH
        #: Hashes of blocks this app calls invalid.
        self.rejected: set[bytes] = set()
        #: Blocks for which this returns True are called invalid too.
        self.reject_if: Callable[[Block], bool] | None = None
        self.build_calls: list[tuple[int, int]] = []

    def build_proposal(self, height: int, round_: int) -> Block:
        self.build_calls.append((height, round_))
        return make_block(
            self.chain_id, height, round_, self.last_hash, self.address, self.validators
        )

    def is_valid_block(self, block: Block) -> bool:
        header = block.header
        if header.chain_id != self.chain_id or header.height != self.last_height + 1:
            return False
        if header.prev_hash != self.last_hash:
            return False
        if header.validator_set_hash != self.validators.hash:
            return False
        if block.hash in self.rejected:
            return False
        return not (self.reject_if is not None and self.reject_if(block))

    def set_head(self, height: int, block_hash: Hash32) -> None:
        self.last_height = height
        self.last_hash = block_hash


@dataclass
class Decision:
    block: Block
    commit: Commit
    time_ms: int


@dataclass
class SimNode:
    index: int
    key: KeyPair
    app: FakeApp
    engine: Tendermint
    behaviour: str = HONEST
    alive: bool = True
    #: Bumped on every crash and restart: events of an older incarnation are void.
    incarnation: int = 0
    #: The durable record of the last signature (what a restart is given).
    last_signed: tuple[int, int, int] = (0, -1, 0)
    records: list[tuple[int, int, int]] = field(default_factory=list)
    #: The last RecordSigned effect itself (it may carry more than the triple, e.g. a lock).
    last_record: RecordSigned | None = None
    #: (time, incarnation, message) of every message its engine broadcast.
    sent: list[tuple[int, int, Message]] = field(default_factory=list)
    decisions: dict[int, Decision] = field(default_factory=dict)
    #: Blocks it got by catch-up at a restart or by block sync rather than by deciding.
    synced: dict[int, Block] = field(default_factory=dict)
    equivocations: list[Equivocation] = field(default_factory=list)
    double_proposals: list[ProposalEquivocation] = field(default_factory=list)
    #: (time, last_signed) of each restart.
    restarts: list[tuple[int, tuple[int, int, int]]] = field(default_factory=list)
    #: Past the simulation's last height: it takes no more events.
    halted: bool = False
    #: Since when a reachable honest peer has the height it is at (for block sync).
    behind_since: int | None = None
    # network state of the current incarnation
    buffer: dict[int, list[Message]] = field(default_factory=dict)
    known: dict[int, dict[bytes, Message]] = field(default_factory=dict)
    seen: set[bytes] = field(default_factory=set)

    @property
    def public_key(self) -> PublicKey:
        return self.key.public_key

    @property
    def honest(self) -> bool:
        return self.behaviour == HONEST

    @property
    def head(self) -> int:
        """Highest height it has (decided or synced)."""
        return max([0, *self.decisions, *self.synced])


class Simulation:
    """``n`` validators on a fake network driven by a fake clock (integer milliseconds)."""

    def __init__(
        self,
        n: int,
        seed: int = 0,
        powers: list[int] | None = None,
        *,
        byzantine: dict[int, str] | None = None,
        crashed: Iterable[int] = (),
        min_delay_ms: int = 1,
        max_delay_ms: int = 50,
        drop_prob: float = 0.0,
        heal_ms: int | None = None,
        dup_prob: float = 0.0,
        slow_prob: float = 0.0,
        slow_max_delay_ms: int = 2_000,
        timeouts: TimeoutConfig | None = None,
        next_height_delay_ms: int = 10,
        gossip_interval_ms: int | None = 200,
        sync_after_ms: int | None = 1_000,
        max_height: int | None = None,
        split: tuple[Iterable[int], Iterable[int]] | None = None,
        random_split: bool = False,
        junk_votes: int = 0,
        crash_on_record: Callable[[int, RecordSigned], bool] | None = None,
        link_filter: Callable[[int, int, Message], bool] | None = None,
        verify_signatures: bool = True,
    ) -> None:
        assert 0 < min_delay_ms <= max_delay_ms
        self.n = n
        self.rng = random.Random(seed)
        self.keys = make_keys(n)
        self.validators = make_validator_set(self.keys, powers)
        self.timeouts = timeouts or fast_timeouts()
        self.min_delay_ms = min_delay_ms
        self.max_delay_ms = max_delay_ms
        #: Before ``heal_ms`` (None: forever) messages are dropped with ``drop_prob`` and
        #: take the slow tail with ``slow_prob``; after it the network is well behaved.
        self.drop_prob = drop_prob
        self.heal_ms = heal_ms
        self.dup_prob = dup_prob
        #: With this probability a message takes up to ``slow_max_delay_ms`` (a heavy tail).
        self.slow_prob = slow_prob
        self.slow_max_delay_ms = slow_max_delay_ms
        self.next_height_delay_ms = next_height_delay_ms
        self.gossip_interval_ms = gossip_interval_ms
        self.sync_after_ms = sync_after_ms
        self.max_height = max_height
        self.split = split
        #: Byzantine nodes pick new halves for every message (else: fixed halves).
        self.random_split = random_split
        #: A double signer also signs this many votes for made-up blocks, sent to the
        #: first half just before its real vote.
        self.junk_votes = junk_votes
        #: Called on every RecordSigned: returning True crashes the node right after the
        #: record is durable, before the signed message leaves.
        self.crash_on_record = crash_on_record
        #: Called on every send ``(src, dst, message)``: returning False drops it.
        self.link_filter = link_filter
        self.verify_signatures = verify_signatures

        self.now = 0
        self._queue: list[tuple[int, int, str, tuple[Any, ...]]] = []
        self._seq = 0
        self._verified: dict[bytes, bool] = {}
        self.events_processed = 0
        self.max_events = 2_000_000
        #: (groups, start_ms, end_ms): nodes in different groups cannot talk meanwhile.
        self.partitions: list[tuple[list[frozenset[int]], int, int | None]] = []

        byzantine = byzantine or {}
        self.nodes: list[SimNode] = []
        for i, key in enumerate(self.keys):
            app = FakeApp(CHAIN_ID, key.address, self.validators)
            engine = Tendermint(CHAIN_ID, app, key, self.timeouts)
            self.nodes.append(SimNode(i, key, app, engine, behaviour=byzantine.get(i, HONEST)))

        #: The first block decided at each height by an honest node.
        self.chain: dict[int, Block] = {}
        #: Everything that must never happen; ``check_safety`` raises on any.
        self.violations: list[str] = []
        #: Proposals signed by the proposer of their round: block hash -> [(height, round)].
        self.proposed: dict[bytes, list[tuple[int, int]]] = {}
        #: Messages signed by Byzantine nodes outside their engine.
        self.byzantine_messages: list[Message] = []
        #: (validator, height, round, step) -> block hash, for honest engines' signatures.
        self._signed: dict[tuple[bytes, int, int, int], bytes] = {}
        self.messages_sent = 0
        self.messages_dropped = 0

        down = set(crashed)
        for node in self.nodes:
            if node.behaviour == SILENT or node.index in down:
                node.alive = False
            else:
                self._push(0, "start", (node.index, node.incarnation, 1))
        if gossip_interval_ms:
            self._push(gossip_interval_ms, "gossip", ())

    # -- queries -------------------------------------------------------------------

    @property
    def f(self) -> int:
        """Most faulty voting power tolerated (by power, like the engine)."""
        return (self.validators.total_power - 1) // 3

    def honest_nodes(self) -> list[SimNode]:
        return [node for node in self.nodes if node.honest]

    def live_honest(self) -> list[SimNode]:
        return [node for node in self.nodes if node.honest and node.alive]

    def proposer_index(self, height: int, round_: int) -> int:
        key = self.validators.compute_proposer(height, round_).public_key
        return next(node.index for node in self.nodes if node.public_key == key)

    def all_decided(self, height: int, nodes: Iterable[int] | None = None) -> bool:
        """Every node in ``nodes`` (default: live honest ones) has ``height``."""
        chosen = [self.nodes[i] for i in nodes] if nodes is not None else self.live_honest()
        return all(node.head >= height for node in chosen)

    def max_decided_height(self, nodes: Iterable[int] | None = None) -> int:
        chosen = [self.nodes[i] for i in nodes] if nodes is not None else self.honest_nodes()
        return max([0, *(h for node in chosen for h in node.decisions)])

    def decision_count(self) -> int:
        return sum(len(node.decisions) for node in self.nodes)

    # -- scheduling ----------------------------------------------------------------

    def _push(self, time_ms: int, kind: str, args: tuple[Any, ...]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (time_ms, self._seq, kind, args))

    def at(self, time_ms: int, action: Callable[[], None]) -> None:
        """Run ``action`` at simulated ``time_ms``."""
        self._push(max(time_ms, self.now), "call", (action,))

    def partition(self, groups: Iterable[Iterable[int]], start_ms: int, end_ms: int | None) -> None:
        """From ``start_ms`` until ``end_ms`` (None: forever) only nodes of one group talk."""
        self.partitions.append(([frozenset(g) for g in groups], start_ms, end_ms))

    def flaky_network(
        self, until_ms: int, min_window_ms: int = 50, max_window_ms: int = 500
    ) -> None:
        """Until ``until_ms``, a new random partition (2 or 3 groups; sometimes none) in
        each window of random length: views of a round split often."""
        start = self.now
        while start < until_ms:
            end = min(until_ms, start + self.rng.randint(min_window_ms, max_window_ms))
            order = self.rng.sample(range(self.n), self.n)
            parts = self.rng.choice([1, 2, 2, 3])
            cuts = sorted(self.rng.sample(range(1, self.n), parts - 1)) if parts > 1 else []
            bounds = [0, *cuts, self.n]
            groups = [order[a:b] for a, b in itertools.pairwise(bounds)]
            if len(groups) > 1:
                self.partition(groups, start, end)
            start = end

    def crash(self, index: int, at_ms: int | None = None) -> None:
        """Stop the node: it receives nothing and its timers are void. In-flight messages
        it already sent still arrive."""
        if at_ms is not None:
            self.at(at_ms, lambda: self.crash(index))
            return
        node = self.nodes[index]
        node.alive = False
        node.incarnation += 1

    def restart(self, index: int, at_ms: int | None = None, *, catch_up: bool = True) -> None:
        """Restart a crashed node with a new engine given its last ``RecordSigned``.

        With ``catch_up`` it resumes at the highest height decided by any honest node + 1,
        the blocks it missed recorded as synced; without, from its own decided chain
        (what it would do when no peer that knows more is reachable).
        """
        if at_ms is not None:
            self.at(at_ms, lambda: self.restart(index, catch_up=catch_up))
            return
        node = self.nodes[index]
        assert not node.alive and node.behaviour != SILENT
        node.alive = True
        node.halted = False
        node.incarnation += 1
        node.restarts.append((self.now, node.last_signed))
        node.engine = restarted_engine(
            CHAIN_ID, node.app, node.key, self.timeouts, node.last_signed, node.last_record
        )
        node.buffer.clear()
        node.known.clear()
        node.seen.clear()
        head = node.head
        if catch_up and self.chain:
            target = max(self.chain)
            for h in range(head + 1, target + 1):
                node.synced[h] = self.chain[h]
            head = max(head, target)
        if head:
            block = node.decisions[head].block if head in node.decisions else node.synced[head]
            node.app.set_head(head, block.hash)
        else:
            node.app.set_head(0, GENESIS_HASH)
        self._start_height(node, head + 1)

    # -- running -------------------------------------------------------------------

    def step(self) -> bool:
        """Process the next event; False if there is none."""
        if not self._queue:
            return False
        time_ms, _, kind, args = heapq.heappop(self._queue)
        self.now = time_ms
        self.events_processed += 1
        if self.events_processed > self.max_events:
            raise RuntimeError(f"more than {self.max_events} events: runaway simulation")
        if kind == "deliver":
            self._deliver(*args)
        elif kind == "timeout":
            index, incarnation, timeout = args
            node = self.nodes[index]
            if node.alive and not node.halted and node.incarnation == incarnation:
                effects = node.engine.on_timeout(timeout.kind, timeout.height, timeout.round)
                self._execute(node, effects)
        elif kind == "start":
            index, incarnation, height = args
            node = self.nodes[index]
            if node.alive and node.incarnation == incarnation:
                self._start_height(node, height)
        elif kind == "gossip":
            self._gossip()
            if self.sync_after_ms is not None:
                self._sync()
            assert self.gossip_interval_ms
            self._push(self.now + self.gossip_interval_ms, "gossip", ())
        elif kind == "call":
            args[0]()
        return True

    def run_until(self, predicate: Callable[[], bool], max_time_ms: int) -> bool:
        """Run until ``predicate()`` holds (True) or the clock would pass ``max_time_ms``."""
        while True:
            if predicate():
                return True
            if not self._queue or self._queue[0][0] > max_time_ms:
                self.now = max(self.now, max_time_ms)
                return predicate()
            self.step()

    def run_for(self, duration_ms: int) -> None:
        self.run_until(lambda: False, self.now + duration_ms)

    def run_until_height(
        self, height: int, max_time_ms: int, nodes: Iterable[int] | None = None
    ) -> bool:
        chosen = list(nodes) if nodes is not None else None
        return self.run_until(lambda: self.all_decided(height, chosen), max_time_ms)

    # -- network -------------------------------------------------------------------

    def _can_talk(self, src: int, dst: int) -> bool:
        for groups, start, end in self.partitions:
            active = start <= self.now and (end is None or self.now < end)
            if active and not any(src in g and dst in g for g in groups):
                return False
        return True

    def _send(self, src: int, dst: int, message: Message, extra_delay_ms: int = 0) -> None:
        self.messages_sent += 1
        if not self._can_talk(src, dst) or (
            self.link_filter is not None and not self.link_filter(src, dst, message)
        ):
            self.messages_dropped += 1
            return
        unruly = self.heal_ms is None or self.now < self.heal_ms
        if unruly and self.drop_prob and self.rng.random() < self.drop_prob:
            self.messages_dropped += 1
            return
        copies = 2 if self.dup_prob and self.rng.random() < self.dup_prob else 1
        for _ in range(copies):
            delay = self.rng.randint(self.min_delay_ms, self.max_delay_ms)
            if unruly and self.slow_prob and self.rng.random() < self.slow_prob:
                delay = self.rng.randint(self.max_delay_ms, self.slow_max_delay_ms)
            self._push(self.now + delay + extra_delay_ms, "deliver", (src, dst, message))

    def _verify(self, message: Message) -> bool:
        if not self.verify_signatures:
            return True
        ok = self._verified.get(message.signature)
        if ok is None:
            ok = self._verified[message.signature] = message.is_signature_valid(CHAIN_ID)
        return ok

    def _deliver(self, src: int | None, index: int, message: Message) -> None:
        node = self.nodes[index]
        if not node.alive or node.halted:
            return
        if src is not None and not self._can_talk(src, index):
            self.messages_dropped += 1
            return  # a partition that started while the message was in flight
        if not self._verify(message):
            self.violations.append(f"node {index} got a badly signed {message!r}")
            return
        key = message.signature
        height = message.height
        if node.honest:
            node.known.setdefault(height, {})[key] = message
        engine = node.engine
        if not engine.started or height > engine.height:
            # The engine drops other heights: keep it for when the node starts it.
            if key not in node.seen:
                node.seen.add(key)
                node.buffer.setdefault(height, []).append(message)
            return
        if height < engine.height:
            node.seen.add(key)
            return
        if message.round > engine.round + MAX_ROUNDS_AHEAD:
            return  # ignored by the engine; gossip will offer it again later
        node.seen.add(key)
        if isinstance(message, Proposal):
            effects = engine.on_proposal(message)
        else:
            effects = engine.on_vote(message)
        self._execute(node, effects)

    def _gossip(self) -> None:
        """Each live honest node offers each live peer what it lacks of the peer's height."""
        for source in self.nodes:
            if not (source.alive and source.honest):
                continue
            for target in self.nodes:
                if target is source or not target.alive or not target.engine.started:
                    continue
                engine = target.engine
                for key, message in source.known.get(engine.height, {}).items():
                    if key not in target.seen:
                        self._send(source.index, target.index, message)

    def _sync(self) -> None:
        """Block sync: a node behind a reachable honest peer for too long catches up."""
        assert self.sync_after_ms is not None
        for node in self.nodes:
            engine = node.engine
            if not node.alive or node.halted or not engine.started or node.behaviour == SILENT:
                continue
            peers = [
                peer
                for peer in self.nodes
                if peer is not node
                and peer.alive
                and peer.honest
                and self._can_talk(peer.index, node.index)
                and peer.head > node.head
            ]
            if not peers:
                node.behind_since = None
                continue
            if node.behind_since is None:
                node.behind_since = self.now
            if self.now - node.behind_since < self.sync_after_ms:
                continue
            node.behind_since = None
            source = max(peers, key=lambda p: p.head)
            head = node.head
            for h in range(head + 1, source.head + 1):
                got = source.decisions.get(h)
                node.synced[h] = got.block if got is not None else source.synced[h]
            node.app.set_head(source.head, node.synced[source.head].hash)
            node.buffer = {h: m for h, m in node.buffer.items() if h > source.head}
            self._start_height(node, source.head + 1)

    # -- effects -------------------------------------------------------------------

    def _start_height(self, node: SimNode, height: int) -> None:
        if self.max_height is not None and height > self.max_height:
            node.halted = True  # done: the engine stops (it may be at an older height)
            return
        if node.engine.started and node.engine.height >= height:
            return  # already there (block sync overtook a scheduled start)
        effects = node.engine.start_height(height, self.validators)
        incarnation = node.incarnation
        self._execute(node, effects)
        for h in [h for h in node.buffer if h < height]:
            del node.buffer[h]
        for message in node.buffer.pop(height, []):
            if not node.alive or node.incarnation != incarnation:
                return
            self._deliver(None, node.index, message)

    def _execute(self, node: SimNode, effects: list[Effect]) -> None:
        incarnation = node.incarnation
        for effect in effects:
            if not node.alive or node.incarnation != incarnation:
                return  # crashed part-way: the rest never happens
            if isinstance(effect, RecordSigned):
                self._on_record(node, effect)
            elif isinstance(effect, Broadcast):
                self._on_broadcast(node, effect.message)
            elif isinstance(effect, ScheduleTimeout):
                self._push(self.now + effect.delay_ms, "timeout", (node.index, incarnation, effect))
            elif isinstance(effect, Decide):
                self._on_decide(node, effect)
            elif isinstance(effect, Equivocation):
                node.equivocations.append(effect)
            elif isinstance(effect, ProposalEquivocation):
                node.double_proposals.append(effect)
            else:  # pragma: no cover
                raise AssertionError(f"unknown effect {effect!r}")

    def _on_record(self, node: SimNode, effect: RecordSigned) -> None:
        record = (effect.height, effect.round, effect.step)
        if record <= node.last_signed:
            self.violations.append(
                f"node {node.index} records {record} at or below its last {node.last_signed}"
            )
        node.last_signed = record
        node.last_record = effect
        node.records.append(record)
        if self.crash_on_record is not None and self.crash_on_record(node.index, effect):
            self.crash(node.index)

    def _on_broadcast(self, node: SimNode, message: Message) -> None:
        signed_at = (message.height, message.round, step_of(message))
        if signed_at != node.last_signed:
            self.violations.append(
                f"node {node.index} broadcasts {signed_at} but its last record is "
                f"{node.last_signed}"
            )
        block_hash = message.block_hash
        slot = (bytes(node.public_key), *signed_at)
        previous = self._signed.setdefault(slot, block_hash)
        if previous != block_hash:
            self.violations.append(
                f"validator {node.index} signed two messages at {signed_at}: "
                f"{previous.hex()[:12]} and {block_hash.hex()[:12]}"
            )
        node.sent.append((self.now, node.incarnation, message))
        node.seen.add(message.signature)
        node.known.setdefault(message.height, {})[message.signature] = message
        if isinstance(message, Proposal):
            self._note_proposal(message)
        others = [i for i in range(self.n) if i != node.index]
        if node.behaviour == DOUBLE_SIGN and isinstance(message, Vote):
            first, second = self._halves(others)
            alt = Vote.sign(
                node.key,
                CHAIN_ID,
                message.type,
                message.height,
                message.round,
                self._other_hash(node, message),
            )
            self.byzantine_messages.append(alt)
            junk = [
                Vote.sign(
                    node.key,
                    CHAIN_ID,
                    message.type,
                    message.height,
                    message.round,
                    sha256(b"junk/%d/" % k + message.signature),
                )
                for k in range(self.junk_votes)
            ]
            self.byzantine_messages += junk
            for i in first:
                for vote in junk:  # they arrive first: the real vote comes a bit later
                    self._send(node.index, i, vote)
                self._send(node.index, i, message, extra_delay_ms=self.max_delay_ms)
            for i in second:
                self._send(node.index, i, alt)
        elif node.behaviour == DOUBLE_PROPOSE and isinstance(message, Proposal):
            first, second = self._halves(others)
            block = make_block(
                CHAIN_ID,
                message.height,
                message.round,
                message.block.header.prev_hash,
                node.key.address,
                self.validators,
                salt=b"double-propose",
            )
            alt_proposal = Proposal.sign(
                node.key, CHAIN_ID, message.height, message.round, block, message.pol_round
            )
            self.byzantine_messages.append(alt_proposal)
            self._note_proposal(alt_proposal)
            for i in first:
                self._send(node.index, i, message)
            for i in second:
                self._send(node.index, i, alt_proposal)
        else:
            for i in others:
                self._send(node.index, i, message)

    def _halves(self, others: list[int]) -> tuple[list[int], list[int]]:
        if self.split is not None:
            return list(self.split[0]), list(self.split[1])
        if self.random_split:
            others = self.rng.sample(others, len(others))
        middle = (len(others) + 1) // 2
        return others[:middle], others[middle:]

    def _other_hash(self, node: SimNode, vote: Vote) -> bytes:
        """A block hash different from the vote's: a proposal of that round if there is
        one, else a block of the Byzantine node's own making (never proposed)."""
        for block_hash, slots in self.proposed.items():
            if (vote.height, vote.round) in slots and block_hash != vote.block_hash:
                return block_hash
        return make_block(
            CHAIN_ID,
            vote.height,
            vote.round,
            node.app.last_hash,
            node.key.address,
            self.validators,
            salt=b"double-sign",
        ).hash

    def _note_proposal(self, proposal: Proposal) -> None:
        if (
            proposal.proposer
            == self.validators.compute_proposer(proposal.height, proposal.round).public_key
        ):
            slots = self.proposed.setdefault(proposal.block_hash, [])
            slots.append((proposal.height, proposal.round))

    def _on_decide(self, node: SimNode, effect: Decide) -> None:
        block, commit = effect.block, effect.commit
        height = block.height
        where = f"node {node.index} height {height}"
        if height != node.engine.height:
            self.violations.append(f"{where}: decided at engine height {node.engine.height}")
        if height in node.decisions or height in node.synced:
            self.violations.append(f"{where}: decided twice")
        try:
            commit.validate(CHAIN_ID, block.header, self.validators)
        except InvalidBlock as exc:
            self.violations.append(f"{where}: commit does not validate: {exc}")
        if (height, commit.round) not in self.proposed.get(block.hash, []):
            # The block must be a proposal of the decided round by that round's proposer.
            self.violations.append(f"{where}: block not proposed at round {commit.round}")
        if block.header.prev_hash != node.app.last_hash or height != node.app.last_height + 1:
            self.violations.append(f"{where}: block does not extend the node's chain")
        if not self._valid_for_honest(block):
            self.violations.append(f"{where}: decided a block honest apps call invalid")
        node.decisions[height] = Decision(block, commit, self.now)
        if node.honest:
            first = self.chain.setdefault(height, block)
            if first.hash != block.hash:
                self.violations.append(
                    f"AGREEMENT: {where} decided {block.hash.hex()[:12]} but "
                    f"{first.hash.hex()[:12]} was decided before"
                )
        node.app.set_head(height, block.hash)
        self._push(
            self.now + self.next_height_delay_ms,
            "start",
            (node.index, node.incarnation, height + 1),
        )

    def _valid_for_honest(self, block: Block) -> bool:
        """Valid for an honest app whose head is the block's parent."""
        header = block.header
        parent = self.chain.get(header.height - 1) if header.height > 1 else None
        parent_hash = parent.hash if parent is not None else GENESIS_HASH
        if header.height > 1 and parent is None:
            return True  # nothing to compare with (cannot happen with honest deciders)
        return (
            header.chain_id == CHAIN_ID
            and header.prev_hash == parent_hash
            and header.validator_set_hash == self.validators.hash
            and not any(
                node.honest
                and (
                    block.hash in node.app.rejected
                    or (node.app.reject_if is not None and node.app.reject_if(block))
                )
                for node in self.nodes
            )
        )

    # -- checks --------------------------------------------------------------------

    def check_safety(self) -> None:
        """Raise ``AssertionError`` listing every violation seen so far."""
        assert not self.violations, "\n".join(self.violations[:20])

    def decided_hashes(self, height: int, honest_only: bool = True) -> set[bytes]:
        return {
            node.decisions[height].block.hash
            for node in self.nodes
            if height in node.decisions and (node.honest or not honest_only)
        }

    def equivocations_of(self, index: int) -> list[tuple[int, Equivocation]]:
        """(observer, evidence) pairs of equivocations by validator ``index``."""
        key = self.nodes[index].public_key
        return [
            (node.index, ev)
            for node in self.nodes
            if node.honest
            for ev in node.equivocations
            if ev.first.validator == key
        ]

    def describe(self) -> str:
        """One line per node, for assertion messages."""
        lines = [f"t={self.now}ms events={self.events_processed}"]
        for node in self.nodes:
            e = node.engine
            lines.append(
                f"node {node.index} {node.behaviour} alive={node.alive} head={node.head} "
                f"engine h={e.height} r={e.round} step={e.step} decided={e.decided} "
                f"locked_round={e.locked_round} last_signed={node.last_signed}"
            )
        return "\n".join(lines)


def nil_or(block_hash: bytes) -> str:
    return "nil" if block_hash == NIL else block_hash.hex()[:12]
