"""The newcomer's tools: `civic up` (what `make run` starts) and `civic bench`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import pytest
from PIL import Image

from civicledger.bench import run_bench
from civicledger.node.ports import free_port_block
from tests.e2e.harness import civic, wait_until

pytestmark = pytest.mark.slow


def test_civic_up_starts_four_connected_validators_and_stops_cleanly(tmp_path):
    api = free_port_block(4)
    p2p = free_port_block(4)
    while abs(api - p2p) < 4:
        p2p = free_port_block(4)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "civicledger",
            "up",
            "--home",
            str(tmp_path / "net"),
            "--port",
            str(api),
            "--p2p-port",
            str(p2p),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "CIVIC_SCRYPT_N": "1024"},
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True
    )
    reader.start()
    try:
        wait_until(
            lambda: sum("peers 3" in line for line in lines[-8:]) >= 4,
            timeout=90,
            what="four nodes each connected to three peers",
        )
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        reader.join(timeout=10)
        process.stdout.close()
    assert "network stopped" in "".join(lines)
    assert all((tmp_path / "net" / f"node{i}" / "config.toml").exists() for i in range(4))


def test_bench_smoke_reports_every_figure():
    result = run_bench(validators=1, transactions=300, senders=10, concurrency=4)
    # Only that the benchmark works: every transaction committed and measured.
    assert result.committed == 300
    assert result.rejected == 0
    assert result.committed_tps > 0
    assert result.latency_ms["p50"] <= result.latency_ms["p99"]
    assert result.ed25519_verify_per_s_core > 0
    assert result.ed25519_verify_per_s_all_cores > 0
    assert 0 < result.ratio_of_verify_limit < 1
    assert result.mean_block_txs > 0 and 0 < result.mean_block_bytes <= result.max_block_bytes
    assert [n.name for n in result.nodes] == ["node0"]
    assert sum(p.committed for p in result.timeline) == 300
    assert result.receipts_checked > 0 and result.receipts_failed == 0


def test_bench_batches_at_a_rate_through_the_batch_endpoint():
    # Two validators: each sender's batches go to one node, the others learn by gossip.
    result = run_bench(
        validators=2, transactions=400, senders=10, rate=400, concurrency=2, batch=50
    )
    assert (result.committed, result.rejected) == (400, 0)
    assert result.receipts_checked > 0 and result.receipts_failed == 0
    # Each transaction is timed from its own due time, so latencies are never negative.
    assert 0 <= result.latency_ms["p50"] <= result.latency_ms["p99"]


def test_bench_document_load_on_seven_validators():
    result = run_bench(
        validators=7, load="document", transactions=140, senders=14, block_interval_ms=100
    )
    assert (result.load, result.committed, result.rejected) == ("document", 140, 0)
    assert len(result.nodes) == 7
    assert result.receipts_checked > 0 and result.receipts_failed == 0


def test_bench_cli_contract_load_on_four_validators_as_json_and_plot(tmp_path):
    plot = tmp_path / "bench.png"
    run = civic(
        "bench",
        "--validators",
        "4",
        "--load",
        "contract",
        "--transactions",
        "200",
        "--senders",
        "8",
        "--block-interval-ms",
        "100",
        "--json",
        "--plot",
        str(plot),
        check=True,
    )
    result = json.loads(run.stdout)
    assert (result["load"], result["committed"], result["rejected"]) == ("contract", 200, 0)
    assert [n["name"] for n in result["nodes"]] == ["node0", "node1", "node2", "node3"]
    assert set(result["latency_ms"]) == {"p50", "p95", "p99", "max"}
    assert sum(p["committed"] for p in result["timeline"]) == 200
    assert result["receipts_failed"] == 0
    assert len(result["load_average"]) == 2
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(plot) as image:
        image.verify()
