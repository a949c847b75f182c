"""End-to-end: ``civic chaos crashloop`` SIGKILLs a validator during heavy commits, five
times (the full run does a hundred, see docs/reliability.md), and after every kill its
chain verifies and nothing it had acknowledged as committed is lost."""

from __future__ import annotations

import json

import pytest

from tests.e2e.harness import civic

pytestmark = pytest.mark.slow


def test_crashloop_five_kills_lose_nothing(tmp_path):
    result = civic(
        "chaos",
        "crashloop",
        "--kills",
        "5",
        "--seed",
        "5",
        "--json",
        "--workdir",
        str(tmp_path),
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "seed 5" in result.stderr  # printed, so a run can be repeated
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["problems"] == []
    assert report["kills"] == 5
    assert report["verify_failures"] == 0
    assert report["txs_lost"] == 0
    # The kills fell while transactions were being committed, and they were checked.
    assert report["txs_acknowledged"] > 0
    assert report["txs_checked"] >= report["txs_acknowledged"] // 2
    assert report["blocks_acknowledged"] >= 5
