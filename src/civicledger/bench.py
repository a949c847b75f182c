"""``civic bench``: measure a local network under load, against the machine's own limit.

It starts a fresh local network in a temporary folder, pre-signs transactions of one load
kind (native transfers, document registrations or calls of a sandboxed contract, see
``bench_loads``) from many funded senders, submits them over HTTP (flat out, or at
``--rate``), watches blocks to see when each one is committed, and reports committed
transactions per second, submit→commit latency percentiles (overall and per second of the
run), block sizes (transactions and bytes) and intervals, and each node's CPU and memory.
In the same run it measures Ed25519 verifications per second with the library the node
uses, on one core and on all cores at once (every node must verify every signature, so
this is the physical limit) and gives throughput as a ratio of it. A sample of receipts is
read back after the run: a load whose transactions fail would measure nothing useful.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import secrets
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nacl.signing

from civicledger.bench_loads import LoadKind, deploy_bench_contract, presign
from civicledger.chain.block import Block, Header
from civicledger.chain.genesis import ConsensusParams
from civicledger.chain.transaction import Transaction
from civicledger.crypto.keys import KeyPair
from civicledger.encoding import encode
from civicledger.node.localnet import create_network, start_node_process
from civicledger.node.ports import free_ports
from civicledger.types import Address, Hash32

__all__ = [
    "BenchResult",
    "NodeUsage",
    "TimelinePoint",
    "compute_timeline",
    "measure_ed25519_parallel_rate",
    "measure_ed25519_verify_rate",
    "run_bench",
]


@dataclass(slots=True)
class NodeUsage:
    """One node process over the timed phase."""

    name: str
    #: CPU time over wall time, in % of one core.
    cpu_percent: float
    #: Resident memory at the end of the run, and its peak (VmHWM).
    rss_mb: float
    peak_rss_mb: float


@dataclass(slots=True)
class TimelinePoint:
    """One second of the run, counted from the first submission."""

    second: int
    submitted: int
    committed: int
    #: Submit→commit latency of the transactions committed in this second (None: none).
    p50_ms: float | None
    p99_ms: float | None


@dataclass(slots=True)
class BenchResult:
    validators: int
    load: str
    transactions: int
    committed: int
    rejected: int
    duration_s: float
    committed_tps: float
    submit_tps: float
    latency_ms: dict[str, float]
    blocks: int
    mean_block_txs: float
    max_block_txs: int
    #: Encoded block (header and transactions), as stored and gossiped.
    mean_block_bytes: float
    max_block_bytes: int
    #: Between consecutive non-empty blocks, from their header times.
    mean_block_interval_ms: float
    #: Of the busiest node.
    node_cpu_percent: float
    #: Of the largest node.
    node_rss_mb: float
    nodes: list[NodeUsage]
    ed25519_verify_per_s_core: float
    #: One core's rate times the number of cores: the limit used for the ratio.
    ed25519_verify_per_s_machine: float
    #: Measured with one thread per core at once (libsodium releases the GIL).
    ed25519_verify_per_s_all_cores: float
    ratio_of_verify_limit: float
    cores: int
    #: Receipts read back after the run (an even sample of the committed transactions).
    receipts_checked: int
    receipts_failed: int
    #: The machine's 1-minute load average before and after the run: other work on a
    #: shared machine takes cores from the nodes (a load above the core count says so).
    load_average: tuple[float, float] = (0.0, 0.0)
    timeline: list[TimelinePoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _ed25519_sample() -> tuple[nacl.signing.VerifyKey, bytes]:
    key = nacl.signing.SigningKey(bytes(range(32)))
    return key.verify_key, key.sign(b"x" * 200)


def _count_verifications(deadline: float) -> int:
    verify_key, signed = _ed25519_sample()
    count = 0
    while time.perf_counter() < deadline:
        for _ in range(500):
            verify_key.verify(signed)
        count += 500
    return count


def measure_ed25519_verify_rate(seconds: float = 1.0) -> float:
    """Verifications per second on one core, with PyNaCl (libsodium) as the node uses."""
    start = time.perf_counter()
    count = _count_verifications(start + seconds)
    return count / (time.perf_counter() - start)


def measure_ed25519_parallel_rate(threads: int, seconds: float = 1.0) -> float:
    """Verifications per second with ``threads`` threads at once (one per core)."""
    counts = [0] * threads
    start = time.perf_counter()
    deadline = start + seconds

    def work(index: int) -> None:
        counts[index] = _count_verifications(deadline)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.perf_counter() - start)


#: At a rate, a batch gathers the transactions due within this long of its first (s).
BATCH_WINDOW_S = 0.05
#: The load generator stops waiting after this long without a new block once all is sent.
STALL_S = 30.0


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _proc_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a node and its verifier processes)."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{current}/task/{current}/children").read_text()
            todo += [int(child) for child in children.split()]
    return tree


def _proc_cpu_seconds(pid: int) -> float:
    """CPU seconds used by ``pid`` and its descendants still running; a process gone
    counts nothing."""
    total = 0
    for member in _proc_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _proc_memory_mb(pid: int, field_name: str = "VmRSS") -> float:
    """Memory (kB field ``field_name`` of ``/proc/PID/status``) of ``pid`` and its
    descendants, in MB."""
    total = 0
    for member in _proc_tree(pid):
        try:
            lines = Path(f"/proc/{member}/status").read_text().splitlines()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in lines if line.startswith(field_name + ":"))
    return total / 1024


class _CpuSampler:
    """Samples the CPU time of processes every ``interval_s`` on a thread."""

    def __init__(self, pids: list[int], interval_s: float = 0.1) -> None:
        self.pids = pids
        self.interval_s = interval_s
        #: (``perf_counter``, CPU seconds of each process).
        self.samples: list[tuple[float, list[float]]] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def _sample(self) -> None:
        self.samples.append((time.perf_counter(), [_proc_cpu_seconds(p) for p in self.pids]))

    def _run(self) -> None:
        self._sample()
        while not self._stopped.wait(self.interval_s):
            self._sample()
        self._sample()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def get_cpu_percent(self, start: float, end: float) -> list[float]:
        """Each process's CPU use (% of one core) between the samples around [start, end]."""
        before = max((s for s in self.samples if s[0] <= start), default=self.samples[0])
        after = min((s for s in self.samples if s[0] >= end), default=self.samples[-1])
        wall = max(after[0] - before[0], 1e-9)
        return [100 * (b - a) / wall for a, b in zip(before[1], after[1], strict=True)]


@dataclass(slots=True)
class _SeenBlock:
    height: int
    tx_ids: list[str]
    #: When the watcher saw it committed (``perf_counter``).
    seen: float
    header: dict[str, Any]


def _block_bytes(block: _SeenBlock, by_id: dict[str, Transaction]) -> int:
    """The size of the block's encoding, rebuilt from its header and the known transactions."""
    h = block.header
    header = Header(
        chain_id=h["chain_id"],
        height=h["height"],
        prev_hash=Hash32(bytes.fromhex(h["prev_hash"])),
        time_ms=h["time_ms"],
        proposer=Address(bytes.fromhex(h["proposer"])),
        tx_root=Hash32(bytes.fromhex(h["tx_root"])),
        state_root=Hash32(bytes.fromhex(h["state_root"])),
        receipts_root=Hash32(bytes.fromhex(h["receipts_root"])),
        validator_set_hash=Hash32(bytes.fromhex(h["validator_set_hash"])),
    )
    return len(Block(header, tuple(by_id[t] for t in block.tx_ids)).encoded)


def compute_timeline(
    submitted: dict[str, float], committed: dict[str, float], start: float
) -> list[TimelinePoint]:
    """Per second since ``start``: submissions, commits, and the commits' latencies."""
    if not submitted:
        return []
    end = max([*submitted.values(), *committed.values()])
    seconds = int(end - start) + 1
    sent = [0] * seconds
    for at in submitted.values():
        sent[int(at - start)] += 1
    latencies: list[list[float]] = [[] for _ in range(seconds)]
    for tx_id, at in committed.items():
        if tx_id in submitted:
            latencies[int(at - start)].append((at - submitted[tx_id]) * 1000)
    points = []
    for second in range(seconds):
        values = sorted(latencies[second])
        points.append(
            TimelinePoint(
                second=second,
                submitted=sent[second],
                committed=len(values),
                p50_ms=round(_percentile(values, 0.50), 1) if values else None,
                p99_ms=round(_percentile(values, 0.99), 1) if values else None,
            )
        )
    return points


async def _drive(
    urls: list[str],
    txs: list[Transaction],
    *,
    rate: float,
    concurrency: int,
    timeout_s: float,
    batch: int = 1,
) -> tuple[dict[str, float], dict[str, float], int, dict[str, str], list[_SeenBlock]]:
    """Submit every transaction and watch blocks; return submit and commit times."""
    submitted: dict[str, float] = {}
    committed: dict[str, float] = {}
    blocks: list[_SeenBlock] = []
    rejected = 0
    #: The first answer for each kind of rejection (status line → body).
    reasons: dict[str, str] = {}
    # Each sender sends to one node, as a client of one agency would: its transactions
    # then arrive in nonce order (a node refuses many waiting beyond a nonce gap).
    lanes = min(len(urls), concurrency)
    queues: list[asyncio.Queue[Transaction]] = [asyncio.Queue() for _ in range(lanes)]
    lane_of: dict[bytes, int] = {}
    for tx in txs:
        queues[lane_of.setdefault(tx.sender, len(lane_of) % lanes)].put_nowait(tx)
    start = time.perf_counter()
    limits = httpx.Limits(
        max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4
    )
    async with httpx.AsyncClient(base_url=urls[0], timeout=30, limits=limits) as http:

        async def submitter(worker: int) -> None:
            # A bare HTTP/1.1 keep-alive connection: the load generator must not be
            # the bottleneck, and a general-purpose async client costs ~10x more per call.
            # Workers spread over the nodes, as clients of many agencies would.
            nonlocal rejected
            queue = queues[worker % lanes]
            host, port = urls[worker % lanes].removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            sent = 0
            try:
                while not queue.empty():
                    tx = queue.get_nowait()
                    due = start + (sent * concurrency + worker) / rate if rate > 0 else 0.0
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    sent += 1
                    # With --batch, one request carries up to that many: flat out, those
                    # waiting; at a rate, those due within BATCH_WINDOW_S of the first, sent
                    # when the last is due (as a client gathering them would) and each timed
                    # from its own due time, so the wait in the batch counts in its latency.
                    group = [tx]
                    dues = [due]
                    while len(group) < batch and not queue.empty():
                        next_due = start + (sent * concurrency + worker) / rate if rate > 0 else 0.0
                        if next_due > due + BATCH_WINDOW_S:
                            break
                        group.append(queue.get_nowait())
                        dues.append(next_due)
                        sent += 1
                    delay = dues[-1] - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    if batch > 1:
                        path = b"/v1/txs"
                        body = encode([t.encoded for t in group])
                    else:
                        path, body = b"/v1/transactions", tx.encoded
                    now = time.perf_counter()
                    for t, t_due in zip(group, dues, strict=True):
                        submitted[t.tx_id.hex()] = t_due if rate > 0 and batch > 1 else now
                    writer.write(
                        b"POST " + path + b" HTTP/1.1\r\nHost: bench\r\n"
                        b"Content-Type: application/octet-stream\r\n"
                        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                    )
                    status_line = await reader.readline()
                    length = 0
                    while True:
                        line = await reader.readline()
                        if line in (b"\r\n", b""):
                            break
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    answer = await reader.readexactly(length)
                    refused: list[tuple[Transaction, str]] = []
                    if batch > 1 and b" 200 " in status_line:
                        items = json.loads(answer)["results"]
                        refused = [
                            (t, f"{item['http_status']} {json.dumps(item['error'])}")
                            for t, item in zip(group, items, strict=True)
                            if item["status"] != "pending"
                        ]
                    elif b" 202 " not in status_line:
                        refused = [(t, answer.decode()) for t in group]
                    for t, reason in refused:
                        rejected += 1
                        reasons.setdefault(status_line.strip().decode(), reason)
                        submitted.pop(t.tx_id.hex(), None)
            finally:
                writer.close()

        # Read before the first submission: a block committed meanwhile would be missed.
        start_height = int((await http.get("/v1/status")).json()["head"]["height"])

        async def watcher() -> None:
            height = start_height
            deadline = time.perf_counter() + timeout_s
            progress = time.perf_counter()
            while time.perf_counter() < deadline:
                head = int((await http.get("/v1/status")).json()["head"]["height"])
                seen = time.perf_counter()
                if head > height:
                    progress = seen
                # Everything sent and no block for a long while: what is missing is lost.
                elif all(q.empty() for q in queues) and seen - progress > STALL_S:
                    return
                while height < head:
                    height += 1
                    block = (await http.get(f"/v1/blocks/{height}?tx_ids=true")).json()
                    for tx_id in block["tx_ids"]:
                        committed[tx_id] = seen
                    blocks.append(_SeenBlock(height, block["tx_ids"], seen, block["header"]))
                if len(committed) >= len(txs) - rejected and all(q.empty() for q in queues):
                    return
                await asyncio.sleep(0.02)

        watch = asyncio.create_task(watcher())
        await asyncio.gather(*(submitter(i) for i in range(concurrency)))
        await watch
    return submitted, committed, rejected, reasons, blocks


def run_bench(
    *,
    validators: int = 1,
    load: LoadKind = "transfer",
    transactions: int = 10_000,
    senders: int = 100,
    rate: float = 0.0,
    concurrency: int = 32,
    batch: int = 1,
    block_interval_ms: int = 500,
    max_block_txs: int = 5_000,
    timeout_s: float = 300.0,
    keep: Path | None = None,
    log_level: str = "warning",
) -> BenchResult:
    """Run one benchmark on a fresh network of ``validators`` and return the figures."""
    per_sender = max(1, transactions // senders)
    keys = [KeyPair.generate() for _ in range(senders)]
    recipient = KeyPair.generate().address
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    verify_rate = measure_ed25519_verify_rate()
    verify_all_cores = measure_ed25519_parallel_rate(cores)
    txs = presign(load, keys, per_sender, recipient)
    passphrase = secrets.token_urlsafe(12)
    with tempfile.TemporaryDirectory(prefix="civic-bench-") as tmp:
        home = keep or Path(tmp)
        ports = free_ports(2 * validators)
        api_ports, p2p_ports = ports[:validators], ports[validators:]
        configs = create_network(
            home,
            validators=validators,
            api_ports=api_ports,
            p2p_ports=p2p_ports,
            passphrase=passphrase,
            balances=tuple((k.address, 10**9) for k in keys),
            params=ConsensusParams(
                block_interval_ms=block_interval_ms,
                empty_block_interval_ms=0,
                max_block_txs=max_block_txs,
            ),
        )
        processes = [start_node_process(c, log_level=log_level) for c in configs]
        urls = [f"http://127.0.0.1:{p}" for p in api_ports]
        try:
            for url, process, config in zip(urls, processes, configs, strict=True):
                _wait_ready(url, process, config)
            # A transaction reaches only the peers connected when it is admitted.
            for url in urls:
                _wait_peers(url, validators - 1)
            if load == "contract":
                deploy_bench_contract(urls[0], [c.parent for c in configs], passphrase)
                # Every node must know the contract before it admits calls to it.
                for url in urls[1:]:
                    _wait_height(url, _height(urls[0]))
            sampler = _CpuSampler([p.pid for p in processes])
            sampler.start()
            submitted, committed, rejected, reasons, blocks = asyncio.run(
                _drive(
                    urls,
                    txs,
                    rate=rate,
                    concurrency=concurrency,
                    timeout_s=timeout_s,
                    batch=batch,
                )
            )
            sampler.stop()
            # Over the loaded phase: from the first submission to the last commit seen.
            cpu = sampler.get_cpu_percent(
                min(submitted.values(), default=0.0), max(committed.values(), default=0.0)
            )
            nodes = [
                NodeUsage(
                    name=config.parent.name,
                    cpu_percent=round(node_cpu, 1),
                    rss_mb=round(_proc_memory_mb(p.pid), 1),
                    peak_rss_mb=round(_proc_memory_mb(p.pid, "VmHWM"), 1),
                )
                for config, p, node_cpu in zip(configs, processes, cpu, strict=True)
            ]
            checked, failed, failure = _check_receipts(urls[0], sorted(committed))
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
    latencies = sorted((committed[t] - s) * 1000 for t, s in submitted.items() if t in committed)
    first_submit = min(submitted.values()) if submitted else 0.0
    last_commit = max(committed.values()) if committed else first_submit
    last_submit = max(submitted.values()) if submitted else first_submit
    duration = max(last_commit - first_submit, 1e-9)
    busy = [b for b in blocks if b.tx_ids]
    by_id = {tx.tx_id.hex(): tx for tx in txs}
    sizes = [_block_bytes(b, by_id) for b in busy]
    intervals = [
        b2.header["time_ms"] - b1.header["time_ms"]
        for b1, b2 in itertools.pairwise(busy)
        if b2.height == b1.height + 1
    ]
    tps = len(latencies) / duration
    notes = []
    if len(latencies) < len(txs) - rejected:
        notes.append(f"{len(txs) - rejected - len(latencies)} transactions not seen committed")
    notes.extend(f"rejected: {status}: {body}" for status, body in reasons.items())
    if failed:
        notes.append(f"{failed} of {checked} receipts read back failed, e.g. {failure}")
    return BenchResult(
        validators=validators,
        load=load,
        transactions=len(txs),
        committed=len(latencies),
        rejected=rejected,
        duration_s=round(duration, 3),
        committed_tps=round(tps, 1),
        submit_tps=round(len(submitted) / max(last_submit - first_submit, 1e-9), 1),
        latency_ms={
            "p50": round(_percentile(latencies, 0.50), 1),
            "p95": round(_percentile(latencies, 0.95), 1),
            "p99": round(_percentile(latencies, 0.99), 1),
            "max": round(latencies[-1], 1) if latencies else float("nan"),
        },
        blocks=len(busy),
        mean_block_txs=round(sum(len(b.tx_ids) for b in busy) / len(busy), 1) if busy else 0.0,
        max_block_txs=max((len(b.tx_ids) for b in busy), default=0),
        mean_block_bytes=round(sum(sizes) / len(sizes)) if sizes else 0.0,
        max_block_bytes=max(sizes, default=0),
        mean_block_interval_ms=round(sum(intervals) / len(intervals), 1) if intervals else 0.0,
        node_cpu_percent=max(n.cpu_percent for n in nodes),
        node_rss_mb=max(n.rss_mb for n in nodes),
        nodes=nodes,
        ed25519_verify_per_s_core=round(verify_rate),
        ed25519_verify_per_s_machine=round(verify_rate * cores),
        ed25519_verify_per_s_all_cores=round(verify_all_cores),
        ratio_of_verify_limit=round(tps / (verify_rate * cores), 4),
        cores=cores,
        receipts_checked=checked,
        receipts_failed=failed,
        load_average=(round(load_before, 2), round(os.getloadavg()[0], 2)),
        timeline=compute_timeline(submitted, committed, first_submit),
        notes=notes,
    )


def _check_receipts(url: str, tx_ids: list[str], sample: int = 50) -> tuple[int, int, str]:
    """Read back an even sample of receipts: (checked, failed, first failure's message)."""
    step = max(1, len(tx_ids) // sample)
    checked = failed = 0
    failure = ""
    with httpx.Client(base_url=url, timeout=10) as http:
        for tx_id in tx_ids[::step]:
            receipt = http.get(f"/v1/transactions/{tx_id}").json()["receipt"]
            checked += 1
            if receipt is None or receipt["status"] != "ok":
                failed += 1
                failure = failure or f"{tx_id}: {receipt}"
    return checked, failed, failure


def _wait_ready(
    url: str, process: subprocess.Popen[bytes], config: Path, timeout_s: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            # The folder goes away with the run: show the end of the node's log now.
            log = config.parent / "node.log"
            tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
            raise RuntimeError(
                f"the benchmark node exited with status {process.returncode}; "
                f"the end of its log:\n" + "\n".join(tail)
            )
        try:
            if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the benchmark node did not answer at {url} within {timeout_s} s")


@dataclass(slots=True)
class FailoverResult:
    validators: int
    trials: int
    #: Seconds from SIGKILL of the next proposer to the next committed block, per trial.
    resume_s: list[float]
    propose_timeout_ms: int


def measure_failover(
    *, validators: int = 4, trials: int = 3, block_interval_ms: int = 200
) -> FailoverResult:
    """Kill the next proposer of a live network and time how long until the chain resumes.

    The others wait for its proposal until the propose timeout, then move to the next
    round with the next proposer: the resume time is dominated by that timeout.
    """
    import signal

    from civicledger.consensus.bft.engine import TimeoutConfig

    timeouts = TimeoutConfig()
    with tempfile.TemporaryDirectory(prefix="civic-failover-") as tmp:
        ports = free_ports(2 * validators)
        api_ports, p2p_ports = ports[:validators], ports[validators:]
        configs = create_network(
            Path(tmp),
            validators=validators,
            api_ports=api_ports,
            p2p_ports=p2p_ports,
            passphrase=secrets.token_urlsafe(12),
            params=ConsensusParams(
                block_interval_ms=block_interval_ms, empty_block_interval_ms=block_interval_ms
            ),
            timeouts=timeouts,
        )
        urls = [f"http://127.0.0.1:{p}" for p in api_ports]

        def launch(config: Path) -> subprocess.Popen[bytes]:
            return start_node_process(config, log_level="warning")

        processes = [launch(c) for c in configs]
        resume: list[float] = []
        try:
            for url, process, config in zip(urls, processes, configs, strict=True):
                _wait_ready(url, process, config)
            addresses = [httpx.get(f"{u}/v1/status", timeout=5).json()["validator"] for u in urls]
            keys = [
                v["address"]
                for v in httpx.get(f"{urls[0]}/v1/validators", timeout=5).json()["validators"]
            ]
            for _ in range(trials):
                head = _wait_height(urls[0], _height(urls[0]) + 2)
                # The proposer of round 0 of the next height (equal powers: round robin).
                victim = addresses.index(keys[(head + 1) % len(keys)])
                others = [u for i, u in enumerate(urls) if i != victim]
                processes[victim].send_signal(signal.SIGKILL)
                killed_at = time.perf_counter()
                processes[victim].wait()
                start = max(_height(u) for u in others)
                _wait_height(others[0], start + 1)
                resume.append(round(time.perf_counter() - killed_at, 3))
                processes[victim] = launch(configs[victim])
                _wait_ready(urls[victim], processes[victim], configs[victim])
                _wait_height(urls[victim], _height(others[0]))
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
    return FailoverResult(validators, trials, resume, timeouts.propose_ms)


def _wait_peers(url: str, peers: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        consensus = httpx.get(f"{url}/v1/status", timeout=5).json()["consensus"]
        if consensus is not None and consensus["peers"] >= peers:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not connect to {peers} peers within {timeout_s} s")


def _height(url: str) -> int:
    return int(httpx.get(f"{url}/v1/status", timeout=5).json()["head"]["height"])


def _wait_height(url: str, height: int, timeout_s: float = 60.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        current = _height(url)
        if current >= height:
            return current
        time.sleep(0.01)
    raise RuntimeError(f"{url} did not reach height {height} within {timeout_s} s")
