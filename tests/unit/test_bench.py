"""The benchmark's pure parts: its load kinds, its per-second timeline and its plot."""

from __future__ import annotations

import pytest
from PIL import Image

from civicledger.bench import BenchResult, NodeUsage, TimelinePoint, compute_timeline
from civicledger.bench_loads import BENCH_CONTRACT, LOAD_KINDS, presign
from civicledger.bench_plot import save_plot
from civicledger.contracts.sandbox.examples import COUNTER
from civicledger.testing import CHAIN_ID, LocalChain


@pytest.mark.parametrize("kind", LOAD_KINDS)
def test_bench_presigned_load_commits_with_successful_receipts(kind):
    chain = LocalChain()
    senders = [chain.key(seed) for seed in (3, 4, 5)]
    for sender in senders:
        assert chain.call("accounts", "transfer", {"to": sender.address, "amount": 1000}).ok
    assert chain.deploy(BENCH_CONTRACT, COUNTER).ok
    txs = presign(kind, senders, 4, chain.key(6).address, chain_id=CHAIN_ID)
    assert [tx.nonce for tx in txs] == [n for n in range(4) for _ in senders]
    for tx in txs:
        chain.node.submit(tx.encoded)
    block = chain.node.produce_block(chain.node.head.time_ms + 1_000)
    assert block is not None and len(block.transactions) == 12
    receipts = chain.node.get_receipts(block.height)
    assert [r.error_message for r in receipts if not r.ok] == []


def test_bench_timeline_counts_each_second_and_leaves_silent_seconds_empty():
    start = 100.0
    submitted = {"a": 100.1, "b": 100.2, "c": 100.9, "d": 102.5}
    committed = {"a": 100.6, "b": 100.7, "c": 102.1, "d": 102.9}
    timeline = compute_timeline(submitted, committed, start)
    assert [(p.second, p.submitted, p.committed) for p in timeline] == [
        (0, 3, 2),
        (1, 0, 0),
        (2, 1, 2),
    ]
    assert timeline[0].p50_ms == pytest.approx(500.0)
    assert timeline[1].p50_ms is None and timeline[1].p99_ms is None
    # c waited 1.2 s, d 0.4 s: p99 is the slower one.
    assert timeline[2].p99_ms == pytest.approx(1200.0)


def _result(timeline: list[TimelinePoint]) -> BenchResult:
    return BenchResult(
        validators=4,
        load="document",
        transactions=4,
        committed=4,
        rejected=0,
        duration_s=3.0,
        committed_tps=1.3,
        submit_tps=1.6,
        latency_ms={"p50": 500.0, "p95": 1200.0, "p99": 1200.0, "max": 1200.0},
        blocks=2,
        mean_block_txs=2.0,
        max_block_txs=2,
        mean_block_bytes=900,
        max_block_bytes=1000,
        mean_block_interval_ms=1500.0,
        node_cpu_percent=10.0,
        node_rss_mb=70.0,
        nodes=[NodeUsage("node0", 10.0, 70.0, 90.0)],
        ed25519_verify_per_s_core=20_000,
        ed25519_verify_per_s_machine=40_000,
        ed25519_verify_per_s_all_cores=38_000,
        ratio_of_verify_limit=0.0,
        cores=2,
        receipts_checked=4,
        receipts_failed=0,
        timeline=timeline,
    )


def test_bench_plot_is_a_png_of_the_timeline(tmp_path):
    timeline = compute_timeline(
        {"a": 100.1, "b": 100.2, "c": 100.9, "d": 102.5},
        {"a": 100.6, "b": 100.7, "c": 102.1, "d": 102.9},
        100.0,
    )
    path = tmp_path / "bench.png"
    save_plot(_result(timeline), path)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size[0] >= 800 and image.size[1] >= 500
