"""End-to-end: a user contract deployed through approval on a 4-validator network, as the
guide "write your first contract" shows, then called through one node and read on another."""

from __future__ import annotations

import json

import httpx
import pytest

from civicledger.contracts.sandbox.examples import COUNTER
from tests.e2e.harness import LocalNetwork, civic, wait_until

pytestmark = pytest.mark.slow


def test_deploy_approve_and_call_on_four_validators(tmp_path):
    net = LocalNetwork(tmp_path, validators=4, block_interval_ms=100)
    net.start()
    try:
        source = tmp_path / "counter.py"
        source.write_text(COUNTER)
        env = {**net.env, "CIVIC_SCRYPT_N": "1024"}
        deployed = civic(
            "contract",
            "deploy",
            str(source),
            "--name",
            "counter",
            "--key",
            "issuer",
            env=env,
            check=True,
        )
        assert "version 1" in deployed.stdout
        # Not callable yet.
        early = civic(
            "tx", "send", "counter", "add", "--args", '{"n": 1}', "--key", "issuer", env=env
        )
        assert early.returncode == 1 and "no contract named 'counter'" in early.stderr
        # No organisation is registered: a validator approves.
        approved = civic(
            "contract", "approve", "counter", "1", "--key", "validator", env=env, check=True
        )
        assert "is active" in approved.stdout
        for n in (2, 3):
            civic(
                "tx",
                "send",
                "counter",
                "add",
                "--args",
                json.dumps({"n": n}),
                "--key",
                "issuer",
                env=env,
                check=True,
            )
        wait_until(
            lambda: net.nodes[3].height() >= net.nodes[0].height(),
            timeout=30,
            what="node3 to reach node0's height",
        )
        other = {**env, "CIVIC_NODE": net.nodes[3].url}
        shown = json.loads(civic("contract", "show", "counter", env=other, check=True).stdout)
        assert shown["active"]["version"] == 1
        total = httpx.post(
            f"{net.nodes[3].url}/v1/query",
            json={"contract": "counter", "method": "total", "args": {}},
            timeout=5,
        ).json()
        assert total["result"] == 5
        heights = {n.height() for n in net.nodes}
        top = min(heights)
        assert len({n.block_hash(top) for n in net.nodes}) == 1
    finally:
        net.stop()
