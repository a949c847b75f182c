"""End-to-end: four validator processes on loopback under load, with crashes and stalls.

After each scenario: every node has the same block at every height (agreement) and
every transaction a client saw committed is present exactly once on every node.
"""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from civicledger.chain.transaction import make_transaction
from civicledger.crypto.keys import KeyPair
from civicledger.node.localnet import LOCALNET_CHAIN_ID
from tests.e2e.harness import LocalNetwork, NodeProcess, wait_until

pytestmark = pytest.mark.slow

SENDERS = [KeyPair.from_seed(bytes([0x40 + i]) * 32) for i in range(4)]


class Load:
    """Transfers submitted continuously to the live nodes, round robin."""

    def __init__(self, net: LocalNetwork) -> None:
        self.net = net
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.accepted = 0

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    def _run(self) -> None:
        recipient = KeyPair.from_seed(b"z" * 32).address
        nonces: dict[bytes, int] = {}
        turn = 0
        while not self.stop.is_set():
            live = [n for n in self.net.nodes if n.running]
            if not live:
                time.sleep(0.05)
                continue
            node = live[turn % len(live)]
            key = SENDERS[turn % len(SENDERS)]
            turn += 1
            try:
                if key.address not in nonces:
                    account = httpx.get(f"{node.url}/v1/accounts/{key.address.hex()}", timeout=2)
                    nonces[key.address] = int(account.json()["pending_nonce"])
                tx = make_transaction(
                    key,
                    chain_id=LOCALNET_CHAIN_ID,
                    nonce=nonces[key.address],
                    contract="accounts",
                    method="transfer",
                    args={"to": recipient, "amount": 1},
                )
                response = httpx.post(
                    f"{node.url}/v1/transactions",
                    content=tx.encoded,
                    headers={"content-type": "application/octet-stream"},
                    timeout=2,
                )
                if response.status_code == 202:
                    nonces[key.address] += 1
                    self.accepted += 1
                else:
                    nonces.pop(key.address, None)  # resynchronise with the node
            except (httpx.HTTPError, ValueError, KeyError):
                nonces.pop(key.address, None)
            time.sleep(0.002)


def _heights(net: LocalNetwork) -> list[int]:
    return [n.height() for n in net.nodes if n.running]


def _progress(net: LocalNetwork, nodes: list[NodeProcess], blocks: int, timeout: float) -> None:
    start = max(n.height() for n in nodes)
    wait_until(
        lambda: min(n.height() for n in nodes) >= start + blocks,
        timeout=timeout,
        what=f"{blocks} more blocks on {[n.url for n in nodes]}",
    )


def _check_agreement(net: LocalNetwork) -> int:
    """Same block everywhere at every height; each committed tx exactly once everywhere."""
    top = min(n.height() for n in net.nodes)
    seen_per_node = []
    for node in net.nodes:
        tx_ids: list[str] = []
        for height in range(1, top + 1):
            block = httpx.get(f"{node.url}/v1/blocks/{height}?tx_ids=true", timeout=5).json()
            tx_ids.extend(block["tx_ids"])
        assert len(tx_ids) == len(set(tx_ids)), f"{node.url} holds a transaction twice"
        seen_per_node.append(tx_ids)
    for height in range(1, top + 1):
        hashes = {n.block_hash(height) for n in net.nodes}
        assert len(hashes) == 1, f"nodes disagree at height {height}: {hashes}"
    assert all(ids == seen_per_node[0] for ids in seen_per_node)
    return len(seen_per_node[0])


def _proposer_of_next_height(net: LocalNetwork) -> NodeProcess:
    """The node that proposes round 0 of the next height (weighted round robin)."""
    status = net.nodes[0].status()
    validators = httpx.get(f"{net.nodes[0].url}/v1/validators", timeout=5).json()["validators"]
    keys = [v["address"] for v in validators]
    height = status["head"]["height"] + 1
    address = keys[height % len(keys)]
    for node in net.nodes:
        if node.status()["validator"] == address:
            return node
    raise AssertionError("no node holds the proposer's key")


def test_four_validators_survive_crashes_and_catch_up(tmp_path):
    net = LocalNetwork(tmp_path, validators=4, funded=SENDERS, block_interval_ms=200)
    net.start()
    try:
        with Load(net) as load:
            _progress(net, net.nodes, 3, timeout=60)

            # SIGKILL one validator, the next proposer: the other three keep committing.
            victim = _proposer_of_next_height(net)
            victim.kill(signal.SIGKILL)
            alive = [n for n in net.nodes if n is not victim]
            _progress(net, alive, 3, timeout=60)

            # Restarted, it catches up with the others.
            victim.start()
            wait_until(
                lambda: victim.height() >= min(n.height() for n in alive),
                timeout=60,
                what="the restarted validator to catch up",
            )

            # SIGKILL two of four: no quorum, the chain stalls without forking.
            down = net.nodes[2:]
            for node in down:
                node.kill(signal.SIGKILL)
            up = net.nodes[:2]
            stalled_at = max(n.height() for n in up)
            time.sleep(3)  # nothing to wait for: we check that nothing happens
            assert max(n.height() for n in up) <= stalled_at + 1

            # Restart them: the chain resumes and everyone catches up.
            for node in down:
                node.start()
            _progress(net, net.nodes, 3, timeout=90)
        assert load.accepted > 100
        wait_until(lambda: len(set(_heights(net))) == 1, timeout=60, what="all nodes at one height")
        committed = _check_agreement(net)
        assert committed > 100
    finally:
        net.stop()


def test_stalled_proposer_causes_a_round_change_and_a_late_node_syncs(tmp_path):
    net = LocalNetwork(tmp_path, validators=4, funded=SENDERS, block_interval_ms=200)
    late = net.nodes[3]
    for node in net.nodes[:3]:
        node.start(wait=False)
    for node in net.nodes[:3]:
        wait_until(node.is_ready, timeout=60, what="node to answer")
    try:
        with Load(net):
            _progress(net, net.nodes[:3], 3, timeout=60)
            # A node started late syncs from genesis and joins consensus.
            late.start()
            wait_until(
                lambda: late.height() >= net.nodes[0].height() - 1 and late.height() > 3,
                timeout=60,
                what="the late node to sync",
            )
            # SIGSTOP the next proposer for 10 s: a round change lets the others go on.
            proposer = _proposer_of_next_height(net)
            before = max(n.height() for n in net.nodes if n is not proposer)
            proposer.kill(signal.SIGSTOP)
            stopped_at = time.monotonic()
            others = [n for n in net.nodes if n is not proposer]
            try:
                # Five heights: the stopped node's turn to propose comes within any four
                # (round robin), whatever height it had reached when it was stopped.
                wait_until(
                    lambda: min(n.height() for n in others) >= before + 5,
                    timeout=60,
                    what="progress without the stopped proposer",
                )
                rounds = [httpx.get(f"{n.url}/v1/metrics", timeout=5).text for n in others]
                assert any("civic_consensus_timeouts_total" in text for text in rounds)
                # The proposer stays stopped for 10 s in all (a fixed fault duration).
                time.sleep(max(0.0, 10 - (time.monotonic() - stopped_at)))
            finally:
                proposer.kill(signal.SIGCONT)
            wait_until(
                lambda: proposer.height() >= min(n.height() for n in others),
                timeout=60,
                what="the resumed proposer to catch up",
            )
        wait_until(lambda: len(set(_heights(net))) == 1, timeout=60, what="all nodes at one height")
        _check_agreement(net)
    finally:
        net.stop()


def test_a_damaged_validator_resyncs_from_its_peers(tmp_path):
    import sqlite3

    from tests.e2e.harness import civic

    net = LocalNetwork(tmp_path, validators=4, funded=SENDERS, block_interval_ms=100)
    net.start()
    try:
        with Load(net):
            _progress(net, net.nodes, 4, timeout=60)
        victim = net.nodes[3]
        victim.stop()
        db = sqlite3.connect(victim.home / "data" / "chain.db")
        height, raw = db.execute("SELECT height, raw FROM txs LIMIT 1").fetchone()
        db.execute("UPDATE txs SET raw = ? WHERE height = ?", (raw[:-1] + b"\x00", height))
        db.commit()
        db.close()
        signed = (victim.home / "data" / "signer-state").read_bytes()
        refused = civic("node", "start", "--config", str(victim.config), env=victim.env, timeout=60)
        assert refused.returncode == 1 and "refusing to start" in refused.stderr
        resync = civic("node", "resync", "--config", str(victim.config), check=True)
        assert "re-syncs from peers" in resync.stdout
        # The record of its last signature survives: it can never sign twice.
        assert (victim.home / "data" / "signer-state").read_bytes() == signed
        victim.start()
        others = [n for n in net.nodes if n is not victim]
        wait_until(
            lambda: victim.height() >= min(n.height() for n in others),
            timeout=60,
            what="the resynced validator to catch up",
        )
        top = victim.height()
        assert {n.block_hash(top) for n in net.nodes} == {victim.block_hash(top)}
        # The re-synced copy verifies from genesis.
        victim.stop()
        assert civic("verify", "--config", str(victim.config)).returncode == 0
    finally:
        net.stop()
