"""The newcomer's tools: `civic up` (what `make run` starts) and `civic bench`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from civicledger.bench import run_bench
from tests.e2e.harness import free_port_block, wait_until

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
    assert 0 < result.ratio_of_verify_limit < 1
