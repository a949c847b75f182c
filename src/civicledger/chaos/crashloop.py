"""Crash consistency: SIGKILL a node again and again during heavy commits, and prove after
every kill that nothing it acknowledged was lost.

``civic chaos crashloop --kills 100`` starts a local network (one validator by default, or
N), drives it with a steady stream of transfers from several clients, and repeats:

1. wait until the node has committed a new block since its last restart, then a random
   delay (seeded: the seed is printed, so a run can be repeated), and SIGKILL it;
2. with the node down, open its database and check it: ``civic verify``'s full check
   (``node/verify.py``: links, certificates, signatures, re-execution to the same
   receipts and state roots, stored state equal to the replayed one), and that every block
   the node had served to a client before the kill is stored, with the same hash and
   exactly the transactions it had listed, each once;
3. restart it: it must open its database (it refuses to start on a damaged one), answer
   for the transactions it had acknowledged, and commit again.

A transaction is *acknowledged* once the node has served a block that contains it (that
is what ``GET /v1/transactions/{id}`` and ``/wait`` report as committed). Transactions
only accepted into the mempool may be lost by a crash: they were never promised.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from civicledger.chain.genesis import load_genesis
from civicledger.chain.transaction import make_transaction
from civicledger.chaos.faults import ChaosNode
from civicledger.chaos.network import create_chaos_network
from civicledger.chaos.workload import workload_accounts
from civicledger.crypto.keys import KeyPair
from civicledger.node.localnet import LOCALNET_CHAIN_ID
from civicledger.node.verify import verify_chain
from civicledger.storage.sqlite import BlockStore

__all__ = [
    "Acknowledged",
    "CrashLoopConfig",
    "CrashLoopReport",
    "check_acknowledged",
    "run_crashloop",
]

READY_TIMEOUT_S = 60.0
#: How long a restarted node may take to commit a new block.
PROGRESS_TIMEOUT_S = 60.0
#: Acknowledged transactions asked of the restarted node through its API, per kill.
API_SAMPLE = 20
#: Concurrent load clients.
LOAD_CLIENTS = 8


@dataclass(frozen=True, slots=True)
class CrashLoopConfig:
    kills: int = 100
    validators: int = 1
    #: Seeds the kill victims and delays and the workload; ``None`` picks one (printed).
    seed: int | None = None
    #: Transfers submitted per second (spread over the serving nodes).
    rate: float = 400.0
    accounts: int = 16
    block_interval_ms: int = 100
    #: After the node's first new block, the kill comes within this many seconds.
    max_delay_s: float = 1.0


@dataclass(slots=True)
class CrashLoopReport:
    seed: int
    validators: int
    kills: int = 0
    seconds: float = 0.0
    #: Head of the last node killed, at its last kill.
    head_height: int = 0
    blocks_acknowledged: int = 0
    txs_acknowledged: int = 0
    #: Acknowledged transactions checked after kills (one transaction counts once per
    #: kill of a node that had acknowledged it).
    txs_checked: int = 0
    #: Acknowledged transactions missing (or changed) after a kill: must be 0.
    txs_lost: int = 0
    verify_failures: int = 0
    #: Transactions the nodes accepted into their mempools, and refusals by error code.
    txs_accepted: int = 0
    txs_refused: dict[str, int] = field(default_factory=dict)
    restart_seconds: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.txs_lost == 0 and self.verify_failures == 0

    def to_json(self) -> dict[str, Any]:
        restarts = sorted(self.restart_seconds)
        return {
            "seed": self.seed,
            "validators": self.validators,
            "kills": self.kills,
            "seconds": round(self.seconds, 1),
            "head_height": self.head_height,
            "blocks_acknowledged": self.blocks_acknowledged,
            "txs_acknowledged": self.txs_acknowledged,
            "txs_checked": self.txs_checked,
            "txs_lost": self.txs_lost,
            "verify_failures": self.verify_failures,
            "txs_accepted": self.txs_accepted,
            "txs_refused": self.txs_refused,
            "restart_s_median": round(restarts[len(restarts) // 2], 2) if restarts else None,
            "restart_s_max": round(restarts[-1], 2) if restarts else None,
            "problems": self.problems,
            "ok": self.ok,
        }


@dataclass(slots=True)
class Acknowledged:
    """What the nodes told clients is committed: by height, the block hash and its
    transaction ids as first served, and how far each node has served."""

    blocks: dict[int, tuple[bytes, tuple[bytes, ...]]] = field(default_factory=dict)
    served: dict[int, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def on_block(
        self, node: int, height: int, block_hash: bytes, tx_ids: tuple[bytes, ...]
    ) -> None:
        known = self.blocks.setdefault(height, (block_hash, tx_ids))
        if known[0] != block_hash:
            self.problems.append(f"node{node} served another block at height {height}")
        self.served[node] = max(self.served.get(node, 0), height)

    def tx_count(self) -> int:
        return sum(len(ids) for _, ids in self.blocks.values())


def check_acknowledged(store: BlockStore, acked: Acknowledged, upto: int) -> tuple[int, list[str]]:
    """Check that blocks 1..``upto`` as acknowledged are in ``store``, each with exactly
    its transactions, and that no transaction appears twice. Returns the number of
    acknowledged transactions missing or changed, and what is wrong."""
    lost = 0
    problems: list[str] = []
    seen: set[bytes] = set()
    for height in range(1, upto + 1):
        block_hash, tx_ids = acked.blocks[height]
        stored = store.get_block(height)
        if stored is None:
            problems.append(f"acknowledged block {height} is missing")
            lost += len(tx_ids)
            continue
        if stored.hash != block_hash:
            problems.append(f"block {height} differs from the one acknowledged")
        stored_ids = [row.tx_id for row in store.get_block_txs(height)]
        missing = [t for t in tx_ids if t not in set(stored_ids)]
        if missing or len(stored_ids) != len(tx_ids):
            problems.append(
                f"block {height}: {len(missing)} acknowledged transactions missing, "
                f"{len(stored_ids)} stored for {len(tx_ids)} acknowledged"
            )
        lost += len(missing)
        for tx_id in tx_ids:
            if tx_id in seen:
                problems.append(f"transaction {tx_id.hex()} acknowledged twice")
            seen.add(tx_id)
            row = store.get_tx(tx_id)
            if row is not None and row.height != height:
                problems.append(f"transaction {tx_id.hex()} moved to block {row.height}")
    return lost, problems


class _Load:
    """Transfers among a few accounts, submitted by several clients at once, each waiting
    for its answers. After a restart (``generation`` moves on) each client asks for its
    senders' next nonces again: the node's mempool was lost with the process."""

    def __init__(
        self, accounts: list[KeyPair], clients: int, rate: float, urls: Callable[[], list[str]]
    ) -> None:
        self.groups = [accounts[i::clients] for i in range(clients)]
        self.interval = clients / rate if rate > 0 else 0.0
        self.urls = urls
        self.generation = 0
        self.accepted = 0
        #: Refusals by error code (a nonce the node does not expect, a full mempool...).
        self.refused: dict[str, int] = {}
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=2.0) as http:
            await asyncio.gather(*(self._client(http, i, g) for i, g in enumerate(self.groups)))

    async def _client(self, http: httpx.AsyncClient, index: int, senders: list[KeyPair]) -> None:
        nonces: dict[bytes, int] = {}
        generation = self.generation
        turn = 0
        while not self._stop.is_set():
            if generation != self.generation:
                generation, nonces = self.generation, {}
            urls = self.urls()
            sender = senders[turn % len(senders)]
            recipient = senders[(turn + 1) % len(senders)]
            turn += 1
            if urls:
                url = urls[(index + turn) % len(urls)]
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                    await self._submit(http, url, sender, recipient, nonces)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval if urls else 0.05)

    async def _submit(
        self,
        http: httpx.AsyncClient,
        url: str,
        sender: KeyPair,
        recipient: KeyPair,
        nonces: dict[bytes, int],
    ) -> None:
        if sender.address not in nonces:
            account = (await http.get(f"{url}/v1/accounts/{sender.address.hex()}")).json()
            nonces[sender.address] = int(account["pending_nonce"])
        tx = make_transaction(
            sender,
            chain_id=LOCALNET_CHAIN_ID,
            nonce=nonces[sender.address],
            contract="accounts",
            method="transfer",
            args={"to": recipient.address, "amount": 1},
        )
        response = await http.post(
            f"{url}/v1/transactions",
            content=tx.encoded,
            headers={"content-type": "application/octet-stream"},
        )
        if response.status_code == 202:
            nonces[sender.address] += 1
            self.accepted += 1
        else:
            code = str(response.json().get("error", {}).get("code", response.status_code))
            self.refused[code] = self.refused.get(code, 0) + 1
            del nonces[sender.address]  # ask the node again


class _CrashLoop:
    def __init__(
        self, config: CrashLoopConfig, home: Path, seed: int, say: Callable[[str], None]
    ) -> None:
        self.config = config
        self.home = home
        self.say = say
        self.rng = random.Random(seed)
        self.report = CrashLoopReport(seed=seed, validators=config.validators)
        self.acked = Acknowledged()
        self.accounts = workload_accounts(seed, config.accounts)
        self.nodes: list[ChaosNode] = []
        self.down: set[int] = set()
        self.locks: dict[int, asyncio.Lock] = {}
        self.load: _Load | None = None
        self._stop = asyncio.Event()
        self.t0 = time.monotonic()

    def log(self, text: str) -> None:
        self.say(f"{time.monotonic() - self.t0:7.1f}s {text}")

    def serving(self) -> list[ChaosNode]:
        return [n for n in self.nodes if n.index not in self.down and n.running]

    def setup(self) -> None:
        count = self.config.validators
        configs, api_ports, p2p_ports = create_chaos_network(
            self.home, count, self.accounts, block_interval_ms=self.config.block_interval_ms
        )
        for i, (path, api, p2p) in enumerate(zip(configs, api_ports, p2p_ports, strict=True)):
            self.nodes.append(ChaosNode(i, path, api, p2p))
            self.locks[i] = asyncio.Lock()

    async def wait_ready(self, node: ChaosNode, client: httpx.AsyncClient) -> int:
        """The node's height once it answers; raise if it exits or stays silent."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if not node.running:
                raise _Stop(f"{node.name} refused to start: {node.exit_message()}")
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                response = await client.get(f"{node.url}/v1/health")
                if response.status_code == 200:
                    return int(response.json()["height"])
            if time.monotonic() > deadline:
                raise _Stop(f"{node.name} did not answer within {READY_TIMEOUT_S:g} s")
            await asyncio.sleep(0.05)

    # -- watching what is acknowledged ----------------------------------------------

    async def watch(self) -> None:
        async with httpx.AsyncClient(timeout=2.0) as client:
            while not self._stop.is_set():
                await asyncio.gather(
                    *(self._poll(client, node) for node in self.serving()),
                    return_exceptions=True,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 0.05)

    async def _poll(self, client: httpx.AsyncClient, node: ChaosNode) -> None:
        # Held while a response is being read: a kill waits for it, so that what the
        # node acknowledged just before dying is counted.
        async with self.locks[node.index]:
            if node.index in self.down:
                return
            height = int((await client.get(f"{node.url}/v1/health")).json()["height"])
            start = self.acked.served.get(node.index, 0) + 1
            for h in range(start, min(height, start + 63) + 1):
                block = (await client.get(f"{node.url}/v1/blocks/{h}?tx_ids=true")).json()
                self.acked.on_block(
                    node.index,
                    h,
                    bytes.fromhex(block["header"]["hash"]),
                    tuple(bytes.fromhex(t) for t in block["tx_ids"]),
                )

    # -- one kill ------------------------------------------------------------------

    async def wait_new_block(self, node: ChaosNode, client: httpx.AsyncClient, above: int) -> int:
        deadline = time.monotonic() + PROGRESS_TIMEOUT_S
        while True:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                health = (await client.get(f"{node.url}/v1/health")).json()
                if int(health["height"]) > above:
                    return int(health["height"])
            if not node.running:
                raise _Stop(f"{node.name} exited: {node.exit_message()}")
            if time.monotonic() > deadline:
                raise _Stop(f"{node.name} committed nothing for {PROGRESS_TIMEOUT_S:g} s")
            await asyncio.sleep(0.02)

    async def kill_once(self, number: int, client: httpx.AsyncClient) -> None:
        node = self.rng.choice(self.nodes)
        # Commits are flowing on this node again; the kill falls anywhere after that.
        since = self.acked.served.get(node.index, 0)
        await self.wait_new_block(node, client, since)
        await asyncio.sleep(self.rng.uniform(0, self.config.max_delay_s))
        node.kill()
        async with self.locks[node.index]:
            self.down.add(node.index)
        upto = self.acked.served.get(node.index, 0)
        store_path = node.data_dir / "chain.db"
        genesis = load_genesis(node.home / "genesis.json")

        def check() -> tuple[Any, int, list[str]]:
            store = BlockStore(store_path)
            try:
                report = verify_chain(store, genesis)
                lost, problems = check_acknowledged(store, self.acked, upto)
                return report, lost, problems
            finally:
                store.close()

        verified, lost, problems = await asyncio.to_thread(check)
        checked = sum(len(self.acked.blocks[h][1]) for h in range(1, upto + 1))
        self.report.kills += 1
        self.report.txs_checked += checked
        self.report.txs_lost += lost
        self.report.head_height = verified.head_height
        self.report.problems += [f"kill {number}: {p}" for p in problems]
        if not verified.ok:
            self.report.verify_failures += 1
            self.report.problems.append(
                f"kill {number}: {node.name} fails verification at block "
                f"{verified.failed_height}: {verified.problem}"
            )
        started = time.monotonic()
        node.start()
        await self.wait_ready(node, client)
        restart_s = time.monotonic() - started
        self.report.restart_seconds.append(restart_s)
        async with self.locks[node.index]:
            self.down.discard(node.index)
        # Its mempool is gone: clients ask for their next nonces again rather than
        # submitting behind a gap.
        if self.load is not None:
            self.load.generation += 1
        await self.ask_api(node, client, upto, number)
        self.log(
            f"kill {number}/{self.config.kills}: {node.name} at height {verified.head_height} "
            f"(acknowledged {upto}); {verified.blocks} blocks, {verified.transactions} txs "
            f"verify; {checked} acknowledged txs there, {lost} lost; restarted in "
            f"{restart_s:.1f} s"
        )
        if problems or not verified.ok:
            raise _Stop(f"kill {number}: {(problems or [verified.problem])[0]}")

    async def ask_api(
        self, node: ChaosNode, client: httpx.AsyncClient, upto: int, number: int
    ) -> None:
        """The restarted node reports the latest acknowledged transactions committed."""
        sample: list[tuple[bytes, int]] = []
        for height in range(upto, 0, -1):
            sample += [(t, height) for t in self.acked.blocks[height][1]]
            if len(sample) >= API_SAMPLE:
                break
        for tx_id, height in sample[:API_SAMPLE]:
            answer = (await client.get(f"{node.url}/v1/transactions/{tx_id.hex()}")).json()
            if answer.get("status") != "committed" or answer.get("height") != height:
                self.report.txs_lost += 1
                self.report.problems.append(
                    f"kill {number}: {node.name} says transaction {tx_id.hex()} is "
                    f"{answer.get('status')} (acknowledged in block {height})"
                )

    # -- the loop ------------------------------------------------------------------

    async def run(self) -> CrashLoopReport:
        self.setup()
        for node in self.nodes:
            node.start()
        tasks: list[asyncio.Task[None]] = []
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                for node in self.nodes:
                    await self.wait_ready(node, client)
                self.log(f"{len(self.nodes)} node(s) up in {self.home}")
                self.load = _Load(
                    self.accounts,
                    LOAD_CLIENTS,
                    self.config.rate,
                    lambda: [n.url for n in self.serving()],
                )
                tasks = [asyncio.create_task(self.load.run())]
                tasks.append(asyncio.create_task(self.watch()))
                for number in range(1, self.config.kills + 1):
                    await self.kill_once(number, client)
        except _Stop as stop:
            if str(stop) not in self.report.problems:
                self.report.problems.append(str(stop))
        finally:
            if self.load is not None:
                self.load.stop()
            self._stop.set()
            for task in tasks:
                try:
                    await asyncio.wait_for(task, 10)
                except Exception as exc:
                    self.report.problems.append(f"the load or the watcher failed: {exc!r}")
            for node in self.nodes:
                node.stop()
        self.report.seconds = time.monotonic() - self.t0
        if self.load is not None:
            self.report.txs_accepted = self.load.accepted
            self.report.txs_refused = dict(self.load.refused)
        self.report.blocks_acknowledged = len(self.acked.blocks)
        self.report.txs_acknowledged = self.acked.tx_count()
        self.report.problems += self.acked.problems
        return self.report


class _Stop(Exception):
    """Ends the loop early: a node would not start or progress, or something was lost."""


def run_crashloop(
    config: CrashLoopConfig, home: Path, *, say: Callable[[str], None] = print
) -> CrashLoopReport:
    """Run the crash loop with its network under ``home`` (created, kept afterwards)."""
    seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**32)
    say(f"crash loop: {config.kills} kills, {config.validators} validator(s), seed {seed}")
    home.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_CrashLoop(config, home, seed, say).run())
