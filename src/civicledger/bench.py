"""``civic bench``: measure a local network under load, against the machine's own limit.

It starts a fresh local network in a temporary folder, pre-signs native transfers from many
funded senders, submits them over HTTP (flat out, or at ``--rate``), watches blocks to see
when each one is committed, and reports committed transactions per second, submit→commit
latency percentiles, block sizes and intervals, and the node's CPU and memory. In the same
run it measures Ed25519 verifications per second with the library the node uses (every
node must verify every signature, so this is the physical limit) and gives throughput as
a ratio of it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nacl.signing

from civicledger.chain.genesis import ConsensusParams
from civicledger.chain.transaction import Transaction, make_transaction
from civicledger.crypto.keys import KeyPair
from civicledger.node.localnet import LOCALNET_CHAIN_ID, create_network, start_node_process
from civicledger.types import Address

__all__ = ["BenchResult", "measure_ed25519_verify_rate", "run_bench"]


@dataclass(slots=True)
class BenchResult:
    validators: int
    transactions: int
    committed: int
    rejected: int
    duration_s: float
    committed_tps: float
    submit_tps: float
    latency_ms: dict[str, float]
    blocks: int
    mean_block_txs: float
    mean_block_interval_ms: float
    #: Of the busiest node.
    node_cpu_percent: float
    #: Of the largest node.
    node_rss_mb: float
    ed25519_verify_per_s_core: float
    ed25519_verify_per_s_machine: float
    ratio_of_verify_limit: float
    cores: int
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def measure_ed25519_verify_rate(seconds: float = 1.0) -> float:
    """Verifications per second on one core, with PyNaCl (libsodium) as the node uses."""
    key = nacl.signing.SigningKey(bytes(range(32)))
    message = b"x" * 200
    signed = key.sign(message)
    verify_key = key.verify_key
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(500):
            verify_key.verify(signed)
        count += 500
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _presign(senders: list[KeyPair], per_sender: int, recipient: Address) -> list[Transaction]:
    txs = []
    for nonce in range(per_sender):
        for key in senders:
            txs.append(
                make_transaction(
                    key,
                    chain_id=LOCALNET_CHAIN_ID,
                    nonce=nonce,
                    contract="accounts",
                    method="transfer",
                    args={"to": recipient, "amount": 1},
                    fuel_limit=100_000,
                )
            )
    return txs


async def _drive(
    urls: list[str],
    txs: list[Transaction],
    *,
    rate: float,
    concurrency: int,
    timeout_s: float,
) -> tuple[dict[str, float], dict[str, float], int, list[tuple[int, int, float]]]:
    """Submit every transaction and watch blocks; return submit and commit times."""
    submitted: dict[str, float] = {}
    committed: dict[str, float] = {}
    blocks: list[tuple[int, int, float]] = []
    rejected = 0
    queue: asyncio.Queue[Transaction] = asyncio.Queue()
    for tx in txs:
        queue.put_nowait(tx)
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
            host, port = urls[worker % len(urls)].removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            sent = 0
            try:
                while not queue.empty():
                    tx = queue.get_nowait()
                    if rate > 0:
                        due = start + (sent * concurrency + worker) / rate
                        delay = due - time.perf_counter()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    sent += 1
                    tx_id = tx.tx_id.hex()
                    body = tx.encoded
                    submitted[tx_id] = time.perf_counter()
                    writer.write(
                        b"POST /v1/transactions HTTP/1.1\r\nHost: bench\r\n"
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
                    await reader.readexactly(length)
                    if b" 202 " not in status_line:
                        rejected += 1
                        submitted.pop(tx_id, None)
            finally:
                writer.close()

        async def watcher() -> None:
            height = int((await http.get("/v1/status")).json()["head"]["height"])
            deadline = time.perf_counter() + timeout_s
            while time.perf_counter() < deadline:
                head = int((await http.get("/v1/status")).json()["head"]["height"])
                seen = time.perf_counter()
                while height < head:
                    height += 1
                    block = (await http.get(f"/v1/blocks/{height}?tx_ids=true")).json()
                    for tx_id in block["tx_ids"]:
                        committed[tx_id] = seen
                    blocks.append((height, len(block["tx_ids"]), seen))
                if len(committed) >= len(txs) - rejected and queue.empty():
                    return
                await asyncio.sleep(0.02)

        watch = asyncio.create_task(watcher())
        await asyncio.gather(*(submitter(i) for i in range(concurrency)))
        await watch
    return submitted, committed, rejected, blocks


def run_bench(
    *,
    validators: int = 1,
    transactions: int = 10_000,
    senders: int = 100,
    rate: float = 0.0,
    concurrency: int = 32,
    block_interval_ms: int = 500,
    max_block_txs: int = 5_000,
    timeout_s: float = 300.0,
    keep: Path | None = None,
    log_level: str = "warning",
) -> BenchResult:
    """Run one benchmark on a fresh single-validator network and return the figures."""
    per_sender = max(1, transactions // senders)
    keys = [KeyPair.generate() for _ in range(senders)]
    recipient = KeyPair.generate().address
    verify_rate = measure_ed25519_verify_rate()
    txs = _presign(keys, per_sender, recipient)
    with tempfile.TemporaryDirectory(prefix="civic-bench-") as tmp:
        home = keep or Path(tmp)
        api_ports = [_free_port() for _ in range(validators)]
        configs = create_network(
            home,
            validators=validators,
            api_ports=api_ports,
            p2p_ports=[_free_port() for _ in range(validators)],
            passphrase=secrets.token_urlsafe(12),
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
            for url, process in zip(urls, processes, strict=True):
                _wait_ready(url, process)
            cpu_before = [_proc_cpu_seconds(p.pid) for p in processes]
            wall_before = time.perf_counter()
            submitted, committed, rejected, blocks = asyncio.run(
                _drive(urls, txs, rate=rate, concurrency=concurrency, timeout_s=timeout_s)
            )
            wall = time.perf_counter() - wall_before
            cpu = max(
                _proc_cpu_seconds(p.pid) - before
                for p, before in zip(processes, cpu_before, strict=True)
            )
            rss = max(_proc_rss_mb(p.pid) for p in processes)
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
    busy = [b for b in blocks if b[1] > 0]
    intervals = [b2[2] - b1[2] for b1, b2 in itertools.pairwise(busy)]
    cores = os.cpu_count() or 1
    tps = len(latencies) / duration
    notes = []
    if len(latencies) < len(txs) - rejected:
        notes.append(f"{len(txs) - rejected - len(latencies)} transactions not seen committed")
    return BenchResult(
        validators=validators,
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
        mean_block_txs=round(sum(b[1] for b in busy) / len(busy), 1) if busy else 0.0,
        mean_block_interval_ms=round(1000 * sum(intervals) / len(intervals), 1)
        if intervals
        else 0.0,
        node_cpu_percent=round(100 * cpu / wall, 1),
        node_rss_mb=round(rss, 1),
        ed25519_verify_per_s_core=round(verify_rate),
        ed25519_verify_per_s_machine=round(verify_rate * cores),
        ratio_of_verify_limit=round(tps / (verify_rate * cores), 4),
        cores=cores,
        notes=notes,
    )


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the benchmark node exited with status {process.returncode}")
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
        api_ports = [_free_port() for _ in range(validators)]
        configs = create_network(
            Path(tmp),
            validators=validators,
            api_ports=api_ports,
            p2p_ports=[_free_port() for _ in range(validators)],
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
            for url, process in zip(urls, processes, strict=True):
                _wait_ready(url, process)
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
                _wait_ready(urls[victim], processes[victim])
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
