"""Running one chaos scenario against real node processes on this machine.

The steps, in order:

1. **Network.** A local network (``create_network``) with one folder per node process;
   the genesis gets the manifest's validators and powers and funds the workload accounts;
   an extra process that shares a validator's key gets a copy of that key; a byzantine
   node gets a ``[byzantine]`` section. A ``ProxyNetwork`` is started and every node's
   ``[p2p] peers`` is rewritten to dial its proxies.
2. **Timeline.** The nodes start; the load and the observer run; each fault is applied at
   its start time and healed at its end (a fault without a duration stays).
3. **Liveness.** Once the last fault is healed, the runner waits for a new block (at most
   30 s) and for every honest node to reach that height (at most 60 s).
4. **Collection.** The load stops, the nodes are stopped cleanly, and each honest node's
   database is read (blocks, certificates, transactions, balances, evidence) and
   checked with ``civic verify``.
5. **Checks.** The checkers judge the observations; the outcome is compared with the
   manifest's expectation.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from civicledger.chain.block import decode_commit, decode_header
from civicledger.chain.genesis import load_genesis
from civicledger.chaos.checkers import (
    CATCH_UP_BOUND_S,
    PROGRESS_BOUND_S,
    BlockRecord,
    CheckResult,
    LivenessRecord,
    NodeRecord,
    Observations,
    run_checks,
)
from civicledger.chaos.faults import ChaosNode, damage_database, find_libfaketime
from civicledger.chaos.manifest import CHECKERS, NETWORK_FAULTS, Fault, Manifest
from civicledger.chaos.network import create_chaos_network
from civicledger.chaos.proxy import LinkStats, ProxyNetwork
from civicledger.chaos.workload import INITIAL_BALANCE, BankLoad, Observer, workload_accounts
from civicledger.contracts.base import state_key
from civicledger.crypto.keystore import Keystore
from civicledger.encoding import decode
from civicledger.errors import LedgerError
from civicledger.node.config import load_config, render_config
from civicledger.node.localnet import LOCALNET_CHAIN_ID
from civicledger.node.verify import verify_chain
from civicledger.storage.sqlite import BlockStore

__all__ = ["ScenarioResult", "run_scenario"]

READY_TIMEOUT_S = 60.0
#: How long a restarted node with damaged data has to answer before it counts as refusing.
RECOVERY_TIMEOUT_S = 30.0
#: How long honest nodes get to reach the last acknowledged block before they stop.
SETTLE_TIMEOUT_S = 20.0


@dataclass(slots=True)
class ScenarioResult:
    name: str
    description: str
    checks: list[CheckResult]
    #: Checker name -> expected outcome (True pass, False fail, None either).
    expected: dict[str, bool | None]
    seconds: float
    submitted: int = 0
    acknowledged: int = 0
    height: int = -1
    events: list[str] = field(default_factory=list)
    links: LinkStats = field(default_factory=LinkStats)
    workdir: str = ""
    error: str = ""

    @property
    def mismatches(self) -> list[str]:
        out = []
        for check in self.checks:
            want = self.expected.get(check.name)
            if want is True and check.passed is False:
                out.append(f"{check.name} failed: {check.reason}")
            elif want is False and check.passed is not False:
                out.append(f"{check.name} was expected to fail but did not ({check.reason})")
        if self.error:
            out.append(self.error)
        return out

    @property
    def met(self) -> bool:
        return not self.mismatches

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "met": self.met,
            "seconds": round(self.seconds, 1),
            "submitted": self.submitted,
            "acknowledged": self.acknowledged,
            "height": self.height,
            "checks": [
                {
                    "name": c.name,
                    "result": c.label,
                    "expected": {True: "pass", False: "fail", None: "any"}[
                        self.expected.get(c.name)
                    ],
                    "reason": c.reason,
                }
                for c in self.checks
            ],
            "mismatches": self.mismatches,
            "events": self.events,
            "links": dataclasses.asdict(self.links),
            "workdir": self.workdir,
        }


def liveness_summary(live: LivenessRecord) -> str:
    if live.not_applicable:
        return f"not judged ({live.not_applicable})"
    if live.progress_s is None:
        return "no progress"
    catch_up = "never" if live.catch_up_s is None else f"{live.catch_up_s:.1f} s"
    return f"progress after {live.progress_s:.1f} s, caught up after {catch_up}"


class _Run:
    """The state of one scenario run (network, processes, proxies, load)."""

    def __init__(self, manifest: Manifest, workdir: Path, say: Callable[[str], None]) -> None:
        self.m = manifest
        self.workdir = workdir
        self.say = say
        self.nodes: list[ChaosNode] = []
        self.keys: dict[int, bytes] = {}  # validator index -> public key
        self.proxies: ProxyNetwork | None = None
        self.events: list[str] = []
        self.t0 = time.monotonic()
        self.t_start = self.t0
        self.down_for_good: set[int] = set()
        self.accounts = workload_accounts(manifest.seed, manifest.load.accounts)
        self.observer = Observer(self.serving_urls)
        self.load: BankLoad | None = None
        self.chain_id = LOCALNET_CHAIN_ID

    # -- setup ---------------------------------------------------------------------

    def log(self, text: str) -> None:
        line = f"{time.monotonic() - self.t0:6.1f}s {text}"
        self.events.append(line)
        self.say(line)

    def serving_urls(self) -> dict[int, str]:
        return {n.index: n.url for n in self.nodes if n.serving}

    def honest_urls(self) -> list[str]:
        honest = set(self.m.honest)
        return [n.url for n in self.nodes if n.serving and n.index in honest]

    async def setup(self) -> None:
        m = self.m
        count = len(m.nodes)
        configs, api_ports, p2p_ports = create_chaos_network(
            self.workdir, count, self.accounts, block_interval_ms=m.block_interval_ms
        )
        homes = [c.parent for c in configs]
        for i in range(m.validators):
            self.keys[i] = bytes.fromhex(Keystore(homes[i] / "keys").info("validator").public_key)
        # The genesis names the manifest's validators with their powers.
        genesis = json.loads((homes[0] / "genesis.json").read_text())
        genesis["validators"] = [
            {"public_key": self.keys[i].hex(), "power": m.powers[i]} for i in range(m.validators)
        ]
        text = json.dumps(genesis, indent=2) + "\n"
        for home in homes:
            (home / "genesis.json").write_text(text)
        self.chain_id = str(genesis["chain_id"])
        # An extra process runs a copy of another validator's key.
        for spec in m.nodes:
            if spec.key_of != spec.index:
                source = Keystore(homes[spec.key_of] / "keys").path_of("validator")
                target = Keystore(homes[spec.index] / "keys").path_of("validator")
                shutil.copyfile(source, target)
        self.proxies = ProxyNetwork(p2p_ports, seed=m.seed)
        await self.proxies.start()
        faketime_nodes = {f.nodes[0] for f in m.faults if f.kind == "clock_skew"}
        library = find_libfaketime() if faketime_nodes else None
        if faketime_nodes and library is None:
            raise LedgerError(
                "clock skew needs libfaketime: run scripts/install-faketime.sh "
                "(or apt-get install faketime)"
            )
        for spec, config_path, api, p2p in zip(m.nodes, configs, api_ports, p2p_ports, strict=True):
            config = load_config(config_path)
            config = dataclasses.replace(
                config,
                p2p=dataclasses.replace(config.p2p, peers=self.proxies.peers_of(spec.index)),
                byzantine=spec.byzantine,
            )
            config_path.write_text(render_config(config))
            node = ChaosNode(spec.index, config_path, api, p2p)
            if library is not None and spec.index in faketime_nodes:
                node.use_faketime(library)
            self.nodes.append(node)

    async def start_nodes(self) -> None:
        for node in self.nodes:
            node.start()
        await self.wait_ready(self.nodes, READY_TIMEOUT_S)
        self.log(f"{len(self.nodes)} nodes up")

    async def wait_ready(self, nodes: list[ChaosNode], timeout: float) -> list[ChaosNode]:
        """Wait until each node answers; return the ones that exited instead."""
        deadline = time.monotonic() + timeout
        pending = list(nodes)
        exited: list[ChaosNode] = []
        async with httpx.AsyncClient(timeout=1.0) as client:
            while pending:
                for node in list(pending):
                    if not node.running:
                        pending.remove(node)
                        exited.append(node)
                        continue
                    try:
                        if (await client.get(f"{node.url}/v1/health")).status_code == 200:
                            pending.remove(node)
                    except httpx.HTTPError:
                        pass
                if pending and time.monotonic() > deadline:
                    names = ", ".join(n.name for n in pending)
                    raise LedgerError(f"{names} did not answer within {timeout:g} s")
                await asyncio.sleep(0.1)
        return exited

    # -- faults --------------------------------------------------------------------

    async def apply(self, fault: Fault) -> None:
        kind = fault.kind
        assert self.proxies is not None
        if kind == "partition":
            self.proxies.set_partition(fault.groups)
            groups = " | ".join("{" + ",".join(map(str, g)) + "}" for g in fault.groups)
            self.log(f"partition {groups}")
            return
        if kind in NETWORK_FAULTS:
            self.proxies.add_fault(fault)
            where = f" on links of nodes {list(fault.nodes)}" if fault.nodes else " on every link"
            detail = (
                f"{fault.delay_ms:g} ms ± {fault.jitter_ms:g} ms"
                if kind == "delay"
                else f"p={fault.probability:g}"
            )
            self.log(f"{kind} {detail}{where}")
            return
        node = self.nodes[fault.nodes[0]]
        self.log(f"{node.name} at height {self.observer.heights().get(node.index, -1)}")
        if kind == "kill":
            node.kill()
            if fault.duration_s is None:
                self.down_for_good.add(node.index)
            self.log(f"SIGKILL {node.name}")
        elif kind == "pause":
            node.pause()
            self.log(f"SIGSTOP {node.name}")
        elif kind == "restart":
            node.stop()
            self.log(f"stopped {node.name} (SIGINT)")
            if not fault.duration_s:
                await self.restart(node)
        elif kind == "clock_skew":
            node.set_skew(fault.skew_s)
            self.log(f"clock of {node.name} skewed by {fault.skew_s:+g} s")
        elif kind == "disk_full":
            node.set_disk_full(True)
            self.log(f"disk full for {node.name} (file size limit 1 byte)")
        elif kind == "wal_damage":
            node.kill()
            what = damage_database(node.data_dir, fault.damage)
            self.log(f"SIGKILL {node.name}, {what}")
            if not fault.duration_s:
                await self.restart_damaged(node)

    async def heal(self, fault: Fault) -> None:
        kind = fault.kind
        assert self.proxies is not None
        if kind == "partition":
            self.proxies.set_partition(())
            self.log("partition healed")
        elif kind in NETWORK_FAULTS:
            self.proxies.remove_fault(fault)
            self.log(f"{kind} ended")
        else:
            node = self.nodes[fault.nodes[0]]
            if kind in ("kill", "restart"):
                await self.restart(node)
            elif kind == "pause":
                node.resume()
                self.log(f"SIGCONT {node.name}")
            elif kind == "clock_skew":
                node.set_skew(0.0)
                self.log(f"clock of {node.name} back to normal")
            elif kind == "disk_full":
                node.set_disk_full(False)
                self.log(f"disk space back for {node.name}")
            elif kind == "wal_damage":
                await self.restart_damaged(node)

    async def restart(self, node: ChaosNode) -> None:
        node.start()
        exited = await self.wait_ready([node], READY_TIMEOUT_S)
        if exited:
            raise LedgerError(f"{node.name} exited on restart: {node.exit_message()}")
        self.log(f"restarted {node.name}")

    async def restart_damaged(self, node: ChaosNode) -> None:
        """Start a node whose data was damaged: it recovers, or refuses and is re-synced."""
        node.start()
        exited = await self.wait_ready([node], RECOVERY_TIMEOUT_S)
        if not exited:
            opened = re.search(r"opened chain \S+ at height (\d+)", node.log_text())
            at = opened.group(1) if opened else "?"
            self.log(f"{node.name} restarted on the damaged data, which opened at height {at}")
            return
        self.log(f"{node.name} refused to start: {node.exit_message(1)}")
        try:
            self.log(f"civic node resync: {node.resync()}")
        except RuntimeError as exc:
            # Resync refuses when it cannot carry over the record of the last signature
            # (the validator could sign twice): the node stays down, a crashed validator.
            self.down_for_good.add(node.index)
            node.stopped_by_us = True
            self.log(f"{node.name} stays down: {exc}")
            return
        await self.restart(node)

    # -- timeline, liveness, collection --------------------------------------------

    def check_exits(self) -> None:
        """Fail the run if a node exited that no fault stopped (a crash is a finding, and
        a node that never ran would make the checks meaningless)."""
        for node in self.nodes:
            if node.process is not None and not node.running and not node.stopped_by_us:
                raise LedgerError(
                    f"{node.name} exited on its own (status {node.process.returncode}): "
                    f"{node.exit_message(1)}"
                )

    async def timeline(self) -> float:
        """Apply and heal the faults on time; return when the last fault was healed."""
        events: list[tuple[float, int, Fault, bool]] = []
        for k, fault in enumerate(self.m.faults):
            events.append((fault.start_s, k * 2, fault, True))
            if fault.end_s is not None:
                events.append((fault.end_s, k * 2 + 1, fault, False))
        events.sort(key=lambda e: (e[0], e[1]))
        healed_at = self.t_start
        for at, _, fault, start in events:
            await asyncio.sleep(max(0.0, self.t_start + at - time.monotonic()))
            self.check_exits()
            if start:
                await self.apply(fault)
            else:
                await self.heal(fault)
                healed_at = time.monotonic()
        await asyncio.sleep(max(0.0, self.t_start + self.m.duration_s - time.monotonic()))
        self.check_exits()
        return healed_at

    def liveness_applicable(self) -> str:
        never_healed = [f for f in self.m.faults if f.end_s is None and f.kind != "kill"]
        if any(f.kind == "partition" for f in never_healed):
            return "the partition is never healed"
        faulty = {n.index for n in self.m.nodes if n.byzantine is not None} | self.down_for_good
        keys_faulty = {self.m.nodes[i].key_of for i in faulty}
        power = sum(self.m.powers)
        faulty_power = sum(self.m.powers[k] for k in keys_faulty)
        if 3 * faulty_power >= power:
            return f"faulty power {faulty_power} of {power} is more than f"
        return ""

    def honest_serving(self) -> list[int]:
        honest = set(self.m.honest) - self.down_for_good
        return [n.index for n in self.nodes if n.serving and n.index in honest]

    async def measure_liveness(self, healed_at: float, wait: bool) -> LivenessRecord:
        reason = self.liveness_applicable()
        if reason:
            return LivenessRecord(None, None, reason)
        honest = self.honest_serving()

        base = max(
            (h for t, i, h in self.observer.samples if t <= healed_at and i in honest),
            default=-1,
        )
        progress_s = None
        deadline = healed_at + PROGRESS_BOUND_S
        while True:
            progressed = [
                (t, h)
                for t, i, h in self.observer.samples
                if t > healed_at and i in honest and h > base
            ]
            if progressed:
                first_t, target = min(progressed)
                progress_s = first_t - healed_at
                break
            if not wait or time.monotonic() > deadline:
                return LivenessRecord(None, None)
            await asyncio.sleep(0.1)
        # Laggards have caught up when every honest node reached the height of that
        # first new block.
        deadline = healed_at + CATCH_UP_BOUND_S
        while True:
            caught_up = self.caught_up_at(honest, target, after=healed_at)
            if caught_up is not None:
                return LivenessRecord(progress_s, caught_up - healed_at)
            if time.monotonic() > deadline:
                return LivenessRecord(progress_s, None)
            await asyncio.sleep(0.1)

    async def settle(self) -> None:
        """Before the nodes stop, let every honest node reach the highest block in which a
        transaction was acknowledged (at most ``SETTLE_TIMEOUT_S``): stopping a node one
        block behind would look like a lost transaction. Not when the network is never
        healed (the sides of a partition have different heads)."""
        if self.liveness_applicable():
            return
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        honest = self.honest_serving()
        while time.monotonic() < deadline:
            target = max(self.acknowledged().values(), default=0)
            heights = self.observer.heights()
            if all(heights.get(i, -1) >= target for i in honest):
                return
            await asyncio.sleep(0.1)
        self.log(
            f"honest nodes did not all reach the last acknowledged block in {SETTLE_TIMEOUT_S:g} s"
        )

    def caught_up_at(self, nodes: list[int], target: int, *, after: float) -> float | None:
        """The first sample time after ``after`` when every node in ``nodes`` was at
        ``target`` or above, according to its latest sample."""
        latest: dict[int, int] = {}
        for t, i, h in self.observer.samples:
            latest[i] = h
            if t > after and all(latest.get(n, -1) >= target for n in nodes):
                return t
        return None

    def read_node(self, node: ChaosNode, honest: bool) -> NodeRecord:
        record = NodeRecord(node.index, honest)
        db = node.data_dir / "chain.db"
        if not db.exists():
            record.verify_problem = "no database"
            return record
        if not honest:
            return record  # a byzantine or crashed node: nothing of it is checked
        genesis = load_genesis(node.home / "genesis.json")
        try:
            store = BlockStore(db)
        except LedgerError as exc:
            record.verify_problem = f"database unreadable: {exc.message}"
            return record
        try:
            for stored in store.iter_blocks():
                header = decode_header(stored.header)
                round_ = 0
                signers: tuple[bytes, ...] = ()
                if stored.commit:
                    commit = decode_commit(stored.commit)
                    round_ = commit.round
                    signers = tuple(bytes(s.public_key) for s in commit.signatures)
                record.blocks.append(
                    BlockRecord(
                        height=stored.height,
                        hash=stored.hash,
                        state_root=bytes(header.state_root),
                        commit_round=round_,
                        signers=signers,
                        tx_ids=tuple(t.tx_id for t in store.get_block_txs(stored.height)),
                    )
                )
            supply = 0
            for key in self.accounts:
                raw = store.get_state(state_key("accounts", f"balance/{key.address.hex()}"))
                value = 0 if raw is None else decode(raw)
                supply += value if isinstance(value, int) else 0
            record.supply = supply
            prefix = state_key("evidence", "evidence/")
            against = set()
            for key_bytes, _ in store.iter_state():
                if key_bytes.startswith(prefix):
                    against.add(bytes.fromhex(key_bytes[len(prefix) :].split(b"/")[0].decode()))
            record.evidence_against = tuple(sorted(against))
            report = verify_chain(store, genesis)
            if not report.ok:
                record.verify_problem = f"height {report.failed_height}: {report.problem}"
        except LedgerError as exc:
            record.verify_problem = f"database unreadable: {exc.message}"
        finally:
            store.close()
        return record

    def acknowledged(self) -> dict[bytes, int]:
        """The workload's transactions that a node reported committed (other transactions,
        such as evidence reports, are not the client's)."""
        submitted = self.load.submitted if self.load is not None else {}
        return {tx: h for tx, h in self.observer.acknowledged.items() if tx in submitted}

    def observations(self, liveness: LivenessRecord) -> Observations:
        honest_nodes = set(self.m.honest) - self.down_for_good
        records = [self.read_node(n, n.index in honest_nodes) for n in self.nodes]
        honest_key_idx = {s.key_of for s in self.m.nodes if s.byzantine is None}
        byz_key_idx = {s.key_of for s in self.m.nodes if s.byzantine is not None}
        double = {
            s.key_of for s in self.m.nodes if s.byzantine in ("double-sign", "double-propose")
        }
        return Observations(
            nodes=records,
            acknowledged=self.acknowledged(),
            expected_supply=INITIAL_BALANCE * len(self.accounts)
            if self.m.load.kind == "bank"
            else None,
            liveness=liveness,
            double_signers=tuple(self.keys[k] for k in sorted(double)),
            honest_keys=tuple(self.keys[k] for k in sorted(honest_key_idx - byz_key_idx)),
        )

    async def run(self) -> tuple[list[CheckResult], int, int]:
        await self.setup()
        await self.start_nodes()
        observer_task = asyncio.create_task(self.observer.run())
        load_spec = self.m.load
        self.load = BankLoad(
            chain_id=self.chain_id,
            accounts=self.accounts,
            rate=load_spec.rate if load_spec.kind == "bank" else 0.0,
            seed=self.m.seed,
            urls=self.honest_urls,
        )
        load_task = asyncio.create_task(self.load.run())
        self.t_start = time.monotonic()
        load_stopper = None
        if load_spec.duration_s is not None:
            load_stopper = asyncio.get_running_loop().call_later(
                load_spec.duration_s, self.load.stop
            )
        try:
            healed_at = await self.timeline()
            self.log("timeline over")
            self.load.stop()
            await load_task
            wait = self.m.expect.expects("liveness") is not None
            liveness = await self.measure_liveness(healed_at, wait)
            self.log(f"liveness: {liveness_summary(liveness)}")
            await self.settle()
            await self.observer.poll_once()
            self.check_exits()
        finally:
            if load_stopper is not None:
                load_stopper.cancel()
            self.load.stop()
            self.observer.stop()
            await asyncio.gather(load_task, observer_task, return_exceptions=True)
        for node in self.nodes:
            node.set_disk_full(False)
            node.stop()
        self.log("nodes stopped; reading their databases")
        obs = self.observations(liveness)
        height = max((n.height for n in obs.nodes), default=-1)
        return run_checks(obs), len(self.load.submitted), height

    async def cleanup(self) -> None:
        for node in self.nodes:
            node.kill()
        if self.proxies is not None:
            await self.proxies.stop()


async def run_scenario(
    manifest: Manifest, workdir: Path, *, say: Callable[[str], None] = lambda _: None
) -> ScenarioResult:
    """Run one scenario in ``workdir`` (created; kept afterwards for inspection)."""
    workdir.mkdir(parents=True, exist_ok=True)
    run = _Run(manifest, workdir, say)
    started = time.monotonic()
    expected = {name: manifest.expect.expects(name) for name in CHECKERS}
    result = ScenarioResult(manifest.name, manifest.description, [], expected, 0.0)
    try:
        checks, submitted, height = await run.run()
        result.checks = checks
        result.submitted = submitted
        result.height = height
        result.acknowledged = len(run.acknowledged())
    except LedgerError as exc:
        result.error = f"scenario could not run: {exc.message}"
    finally:
        await run.cleanup()
    result.seconds = time.monotonic() - started
    result.events = run.events
    if run.proxies is not None:
        result.links = run.proxies.total()
    result.workdir = str(workdir)
    return result
