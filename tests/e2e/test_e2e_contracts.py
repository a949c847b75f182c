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
        # No organisation is registered: validators with more than 2/3 of the power approve.
        approved = approve_as_validators(net, "counter")
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
        # A scheduled call runs on every validator alike, two seconds later: the chain makes
        # a block for it even when no transaction waits.
        source.write_text(REMINDER)
        civic(
            "contract",
            "deploy",
            str(source),
            "--name",
            "reminder",
            "--key",
            "issuer",
            env=env,
            check=True,
        )
        approve_as_validators(net, "reminder")
        sent = civic(
            "tx",
            "send",
            "reminder",
            "remind",
            "--args",
            '{"note": "renew"}',
            "--key",
            "issuer",
            env=env,
            check=True,
        )
        # "committed <tx id> in block <h> (fuel ..., result {"$bytes": "<schedule id>"})"
        words = sent.stdout.split()
        height = int(words[4])
        schedule_id = json.loads(sent.stdout[sent.stdout.index("result ") + 7 : -2])["$bytes"]

        def ran() -> dict | None:
            answer = httpx.get(f"{net.nodes[3].url}/v1/schedules/{schedule_id}", timeout=5)
            body = answer.json()
            return body if body.get("status") == "ran" else None

        done = wait_until(ran, timeout=30, what="the scheduled call to run on node3")
        assert done["receipt"]["status"] == "ok"
        shown = civic("contract", "scheduled", schedule_id, env=env, check=True)
        assert json.loads(shown.stdout)["status"] == "ran"
        missing = civic("contract", "scheduled", "00" * 32, env=env)
        assert missing.returncode == 1 and "no scheduled call" in missing.stderr
        assert done["height"] > height
        rung = httpx.post(
            f"{net.nodes[1].url}/v1/query",
            json={"contract": "reminder", "method": "rung", "args": {}},
            timeout=5,
        ).json()
        assert rung["result"] == 1
        heights = {n.height() for n in net.nodes}
        top = min(heights)
        assert top >= done["height"]
        assert len({n.block_hash(top) for n in net.nodes}) == 1
    finally:
        net.stop()


def approve_as_validators(net: LocalNetwork, name: str):
    """Approve version 1 of ``name`` with the validators of nodes 0, 1 and 2 (3 of 4)."""
    for node in net.nodes[:3]:
        env = {**node.env, "CIVIC_SCRYPT_N": "1024"}
        approved = civic(
            "contract", "approve", name, "1", "--key", "validator", env=env, check=True
        )
    return approved


REMINDER = """
class Reminder:
    @call
    def remind(self, ctx, args):
        note = args.text("note")
        return ctx.schedule("ring", {"note": note}, at_time_ms=ctx.time_ms + 2_000, fuel=50_000)

    @call
    def ring(self, ctx, args):
        require(ctx.scheduled, "only the chain rings")
        ctx.set("rung", ctx.get_int("rung") + 1)
        ctx.emit("Rang", note=args.text("note"))
        return ctx.height

    @view
    def rung(self, ctx, args):
        return ctx.get_int("rung")
"""
