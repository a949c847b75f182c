"""End-to-end: four validators under load, one of them byzantine (``[byzantine] mode``).

With one faulty validator of four (f = 1), the three honest ones must agree on the block
at every height, keep committing everything clients submitted (exactly once), refuse
every invalid block, and, when the faulty one signs conflicting votes, record the proof
in the ``evidence`` contract, where anyone can read it through the API.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import httpx
import pytest

from civicledger.chain.transaction import make_transaction
from civicledger.consensus.bft.messages import Vote
from civicledger.crypto.keys import KeyPair
from civicledger.encoding import decode
from civicledger.node.byzantine import INVALID_BLOCK_KINDS
from civicledger.node.localnet import LOCALNET_CHAIN_ID
from tests.e2e.harness import LocalNetwork, NodeProcess, wait_until

pytestmark = pytest.mark.slow

#: One sender per honest node, each always submitting to its own node (nonces in order).
SENDERS = [KeyPair.from_seed(bytes([0x60 + i]) * 32) for i in range(3)]
BYZANTINE = 3
#: Heights the honest nodes must commit under load while the faulty one misbehaves;
#: the faulty one is round 0's proposer of one height in four.
HEIGHTS = 16


class Load:
    """Transfers submitted continuously, one sender per honest node; keeps the ids of
    the transactions each node accepted."""

    def __init__(self, nodes: list[NodeProcess]) -> None:
        self.nodes = nodes
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.accepted: list[str] = []

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    def _run(self) -> None:
        recipient = KeyPair.from_seed(b"y" * 32).address
        nonces = [0] * len(self.nodes)
        turn = 0
        with httpx.Client(timeout=5) as http:
            while not self.stop.is_set():
                i = turn % len(self.nodes)
                turn += 1
                tx = make_transaction(
                    SENDERS[i],
                    chain_id=LOCALNET_CHAIN_ID,
                    nonce=nonces[i],
                    contract="accounts",
                    method="transfer",
                    args={"to": recipient, "amount": 1},
                )
                try:
                    response = http.post(
                        f"{self.nodes[i].url}/v1/transactions",
                        content=tx.encoded,
                        headers={"content-type": "application/octet-stream"},
                    )
                except httpx.HTTPError:
                    continue  # the same nonce again
                if response.status_code == 202:
                    nonces[i] += 1
                    self.accepted.append(tx.tx_id.hex())
                time.sleep(0.003)


def _blocks(node: NodeProcess, top: int) -> list[dict[str, Any]]:
    return [
        httpx.get(f"{node.url}/v1/blocks/{h}?txs=true", timeout=10).json()
        for h in range(1, top + 1)
    ]


def _network(tmp_path: Any, mode: str) -> LocalNetwork:
    return LocalNetwork(
        tmp_path, validators=4, funded=SENDERS, block_interval_ms=100, byzantine={BYZANTINE: mode}
    )


def _run_with_one_byzantine(net: LocalNetwork, heights: int = HEIGHTS) -> dict[str, Any]:
    """Load the honest nodes for ``heights`` heights, then check agreement and that every
    accepted transaction is committed exactly once."""
    net.start()
    honest = [n for i, n in enumerate(net.nodes) if i != BYZANTINE]
    with Load(honest) as load:
        start = max(n.height() for n in honest)
        wait_until(
            lambda: min(n.height() for n in honest) >= start + heights,
            timeout=120,
            what=f"{heights} heights committed by the honest nodes",
        )
    assert len(load.accepted) > 100
    # Everything the honest nodes accepted gets committed, despite the faulty validator.
    last = load.accepted[-3:]
    wait_until(
        lambda: all(
            httpx.get(f"{honest[0].url}/v1/transactions/{t}", timeout=5).json()["status"]
            == "committed"
            for t in last
        ),
        timeout=60,
        what="the last accepted transactions to be committed",
    )
    top = min(n.height() for n in honest)
    chains = [_blocks(n, top) for n in honest]
    # Agreement: the same block at every height on every honest node.
    for height in range(top):
        hashes = {chain[height]["header"]["hash"] for chain in chains}
        assert len(hashes) == 1, f"honest nodes disagree at height {height + 1}: {hashes}"
    # Durability: every accepted transaction is committed, exactly once.
    committed = [tx["tx_id"] for block in chains[0] for tx in block.get("transactions", [])]
    assert len(committed) == len(set(committed)), "a transaction was committed twice"
    missing = set(load.accepted) - set(committed)
    assert not missing, f"{len(missing)} accepted transactions were never committed"
    byzantine = net.nodes[BYZANTINE]
    validators = httpx.get(f"{honest[0].url}/v1/validators", timeout=5).json()["validators"]
    address = byzantine.status()["validator"]
    (public_key,) = [v["public_key"] for v in validators if v["address"] == address]
    faults = httpx.get(f"{byzantine.url}/v1/metrics", timeout=5).text
    assert "byzantine_faults_total" in faults
    assert "BYZANTINE NODE" in byzantine.log()
    return {
        "honest": honest,
        "chain": chains[0],
        "address": address,
        "public_key": public_key,
        "byzantine": byzantine,
    }


def test_byzantine_double_sign_is_recorded_as_evidence(tmp_path):
    net = _network(tmp_path, "double-sign")
    try:
        run = _run_with_one_byzantine(net)
        honest = run["honest"]
        # Honest validators reported the conflicting votes to the evidence contract.
        reports = [
            tx
            for block in run["chain"]
            for tx in block.get("transactions", [])
            if tx["contract"] == "evidence" and tx["receipt"]["status"] == "ok"
        ]
        assert reports, "no evidence of the double signing was recorded on chain"
        for report in reports:
            first = Vote.from_value(decode(bytes.fromhex(report["args"]["first"]["$bytes"])))
            assert first.validator.hex() == run["public_key"]
            # Anyone can read the record through the API, on every honest node.
            for node in honest:
                response = httpx.post(
                    f"{node.url}/v1/query",
                    json={
                        "contract": "evidence",
                        "method": "get",
                        "args": {
                            "validator": {"$bytes": run["public_key"]},
                            "height": first.height,
                            "round": first.round,
                            "type": first.type,
                        },
                    },
                    timeout=5,
                )
                assert response.status_code == 200, response.text
                record = response.json()["result"]
                votes = [
                    Vote.from_value(decode(bytes.fromhex(record[k]["$bytes"])))
                    for k in ("first", "second")
                ]
                assert {v.validator.hex() for v in votes} == {run["public_key"]}
                assert votes[0].block_hash != votes[1].block_hash
                assert all(v.is_signature_valid(LOCALNET_CHAIN_ID) for v in votes)
    finally:
        net.stop()


def test_byzantine_double_proposals_do_not_split_the_honest_nodes(tmp_path):
    net = _network(tmp_path, "double-propose")
    try:
        run = _run_with_one_byzantine(net)
        log = run["byzantine"].log()
        doubled = {
            int(h)
            for h, r in re.findall(r"proposed two blocks at height (\d+) round (\d+)", log)
            if r == "0"
        }
        chain = run["chain"]
        decided = [h for h in doubled if h <= len(chain)]
        assert decided, "the faulty proposer never proposed two blocks"
        for height in decided:
            block = chain[height - 1]
            # Neither of its blocks had a quorum: a later round decided the height.
            assert block["commit"]["round"] >= 1, f"height {height} decided in round 0"
            assert block["header"]["proposer"] != run["address"]
    finally:
        net.stop()


#: What an honest node says when it refuses each kind of invalid block (an empty block
#: has no transaction signature to break: its state root is broken instead).
REFUSALS = {
    "state-root": ("state root differs",),
    "tx-signature": ("is not signed", "state root differs"),
    "height": ("is for height",),
    "parent": ("does not extend",),
    "future-time": ("in the future",),
    "tx-root": ("do not match the tx root",),
    "proposer": ("proposed by a non-validator",),
}


def test_byzantine_invalid_blocks_are_refused(tmp_path):
    net = _network(tmp_path, "invalid-block")
    try:
        # Round 0 of one height in four is its turn: 30 heights give it 7 turns at least.
        run = _run_with_one_byzantine(net, heights=30)
        proposed = set(
            re.findall(r"proposed an invalid block \(([a-z-]+)\)", run["byzantine"].log())
        )
        assert proposed == set(INVALID_BLOCK_KINDS)
        logs = "\n".join(n.log() for n in run["honest"])
        for kind in proposed:
            assert any(
                "invalid block proposed" in line and reason in line
                for line in logs.splitlines()
                for reason in REFUSALS[kind]
            ), f"no honest node refused the {kind} block"
        # None of its blocks was ever committed.
        assert all(b["header"]["proposer"] != run["address"] for b in run["chain"])
    finally:
        net.stop()
