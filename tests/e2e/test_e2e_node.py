"""End-to-end: a real node process under load, killed, restarted, tampered with."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import threading
from pathlib import Path

import httpx
import pytest

from civicledger.chain.transaction import make_transaction
from civicledger.crypto.keys import KeyPair
from civicledger.node.localnet import LOCALNET_CHAIN_ID
from tests.e2e.harness import LocalNetwork, civic, wait_until

pytestmark = pytest.mark.slow

SEED = 20261125


def _load(net: LocalNetwork, senders: list[KeyPair], stop: threading.Event) -> None:
    """Submit transfers flat out until ``stop`` or until the node goes away."""
    recipient = KeyPair.from_seed(b"r" * 32).address
    with httpx.Client(base_url=net.url, timeout=5) as http:
        try:
            nonces = {
                k: int(http.get(f"/v1/accounts/{k.address.hex()}").json()["nonce"]) for k in senders
            }
            while not stop.is_set():
                for key in senders:
                    tx = make_transaction(
                        key,
                        chain_id=LOCALNET_CHAIN_ID,
                        nonce=nonces[key],
                        contract="accounts",
                        method="transfer",
                        args={"to": recipient, "amount": 1},
                    )
                    response = http.post(
                        "/v1/transactions",
                        content=tx.encoded,
                        headers={"content-type": "application/octet-stream"},
                    )
                    if response.status_code == 202:
                        nonces[key] += 1
        except httpx.HTTPError:
            return  # the node was killed


def _committed_tx_ids(net: LocalNetwork, upto: int) -> dict[str, int]:
    found: dict[str, int] = {}
    for height in range(1, upto + 1):
        block = httpx.get(f"{net.url}/v1/blocks/{height}?tx_ids=true", timeout=5).json()
        for tx_id in block["tx_ids"]:
            found[tx_id] = height
    return found


def test_sigkill_under_load_loses_no_acknowledged_transaction(tmp_path):
    rng = random.Random(SEED)
    senders = [KeyPair.from_seed(bytes([i + 1]) * 32) for i in range(6)]
    net = LocalNetwork(tmp_path, funded=senders, block_interval_ms=50)
    net.start()
    acknowledged: dict[str, int] = {}
    try:
        for _ in range(4):
            stop = threading.Event()
            loader = threading.Thread(target=_load, args=(net, senders, stop), daemon=True)
            loader.start()
            target = net.height() + rng.randint(3, 8)
            wait_until(lambda t=target: net.height() >= t, timeout=60, what="blocks under load")
            # What a client has seen committed is acknowledged; then kill mid-commit.
            acknowledged.update(_committed_tx_ids(net, net.height()))
            net.kill(signal.SIGKILL)
            stop.set()
            loader.join(timeout=30)
            seen_height = max(acknowledged.values(), default=0)
            net.start()
            # Every acknowledged transaction is still there, in the same block.
            assert net.height() >= seen_height
            after = _committed_tx_ids(net, seen_height)
            missing = {t: h for t, h in acknowledged.items() if after.get(t) != h}
            assert not missing, f"{len(missing)} acknowledged transactions lost"
    finally:
        net.stop()
    assert len(acknowledged) > 50, "the load did not commit enough to test anything"
    result = civic("verify", "--config", str(net.config))
    assert result.returncode == 0, result.stderr
    assert "OK:" in result.stdout


def test_tampered_chain_is_named_by_verify_and_refused_by_the_node(tmp_path):
    sender = KeyPair.from_seed(b"t" * 32)
    net = LocalNetwork(tmp_path, funded=[sender])
    net.start()
    try:
        for nonce in range(3):
            tx = make_transaction(
                sender,
                chain_id=LOCALNET_CHAIN_ID,
                nonce=nonce,
                contract="accounts",
                method="transfer",
                args={"to": sender.address, "amount": 1},
            )
            submitted = httpx.post(
                f"{net.url}/v1/transactions",
                content=tx.encoded,
                headers={"content-type": "application/octet-stream"},
            )
            assert submitted.status_code == 202, submitted.text
            tx_id = submitted.json()["tx_id"]
            got = httpx.get(f"{net.url}/v1/transactions/{tx_id}/wait?timeout=30", timeout=40)
            assert got.status_code == 200, got.text
            assert got.json()["status"] == "committed"
        height = got.json()["height"]
    finally:
        net.stop()
    assert civic("verify", "--config", str(net.config)).returncode == 0

    db = sqlite3.connect(net.home / "data" / "chain.db")
    (raw,) = db.execute("SELECT raw FROM txs WHERE height = ?", (height,)).fetchone()
    flipped = bytearray(raw)
    flipped[len(flipped) // 2] ^= 0x01
    db.execute("UPDATE txs SET raw = ? WHERE height = ?", (bytes(flipped), height))
    db.commit()
    db.close()

    result = civic("verify", "--config", str(net.config))
    assert result.returncode == 1
    assert f"FAILED at block {height}" in result.stderr

    started = civic("node", "start", "--config", str(net.config), env=net.env, timeout=60)
    assert started.returncode == 1
    assert "refusing to start" in started.stderr
    assert f"block {height}" in started.stderr


def test_cli_tour_with_offline_receipt(tmp_path):
    net = LocalNetwork(tmp_path)
    net.start()
    env = {**net.env, "CIVIC_SCRYPT_N": "1024"}
    try:
        civic("keys", "new", "alice", env=env, check=True)
        alice = json.loads(civic("keys", "export-public", "alice", env=env, check=True).stdout)
        minted = civic(
            "account",
            "mint",
            "--key",
            "issuer",
            "--to",
            alice["address"],
            "--amount",
            "100",
            env=env,
            check=True,
        )
        assert minted.stdout.startswith("committed ")
        balance = civic("account", "balance", alice["address"], env=env, check=True)
        assert "balance 100" in balance.stdout

        v1 = tmp_path / "decree.txt"
        v1.write_text("Decree 17, first text\n")
        v2 = tmp_path / "decree-v2.txt"
        v2.write_text("Decree 17, corrected\n")
        registered = civic(
            "doc",
            "register",
            str(v1),
            "--id",
            "decree-17",
            "--title",
            "Decree 17",
            "--key",
            "alice",
            env=env,
            check=True,
        )
        tx_id = registered.stdout.split()[1]
        civic(
            "doc",
            "update",
            str(v2),
            "--id",
            "decree-17",
            "--note",
            "typo",
            "--key",
            "alice",
            env=env,
            check=True,
        )
        old = civic("doc", "verify", str(v1), env=env)
        assert old.returncode == 1 and "SUPERSEDED" in old.stdout
        new = civic("doc", "verify", str(v2), env=env)
        assert new.returncode == 0 and "CURRENT" in new.stdout

        poor = civic(
            "account",
            "transfer",
            "--to",
            "00" * 20,
            "--amount",
            "1000",
            "--key",
            "alice",
            env=env,
        )
        assert poor.returncode == 1 and "insufficient_funds" in poor.stderr

        saved = tmp_path / "receipt.json"
        civic("receipt", "get", tx_id, "-o", str(saved), env=env, check=True)
    finally:
        net.stop()

    # Offline: the node is stopped.
    genesis = str(net.home / "genesis.json")
    ok = civic("receipt", "verify", str(saved), "--genesis", genesis)
    assert ok.returncode == 0 and ok.stdout.startswith("VALID"), ok.stderr
    proof = json.loads(saved.read_text())
    proof["header"] = proof["header"][:-2] + ("00" if proof["header"][-2:] != "00" else "01")
    saved.write_text(json.dumps(proof))
    bad = civic("receipt", "verify", str(saved), "--genesis", genesis)
    assert bad.returncode == 1 and "INVALID" in bad.stderr


def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _submit_batch(net: LocalNetwork, key: KeyPair, first_nonce: int, count: int) -> None:
    raws = [
        make_transaction(
            key,
            chain_id=LOCALNET_CHAIN_ID,
            nonce=first_nonce + n,
            contract="accounts",
            method="transfer",
            args={"to": key.address, "amount": 1},
        ).encoded.hex()
        for n in range(count)
    ]
    response = httpx.post(f"{net.url}/v1/txs", json={"txs": raws}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == count


def test_a_stopped_or_killed_node_leaves_no_verifier_process_behind(tmp_path):
    key = KeyPair.from_seed(b"v" * 32)
    net = LocalNetwork(tmp_path, funded=[key])
    net.start()
    try:
        # A batch large enough to go to the verifier processes.
        _submit_batch(net, key, 0, 64)
        assert net.nodes[0].process is not None
        workers = _children(net.nodes[0].process.pid)
        assert workers, "the batch was not checked by verifier processes"
        net.kill(signal.SIGTERM)
        # A graceful stop: the node closes its store and its verifier processes.
        assert net.nodes[0].process.returncode == 0, net.nodes[0].log()
        assert not any(_alive(pid) for pid in workers)

        net.start()
        wait_until(lambda: net.height() >= 1, timeout=30, what="the first block")
        nonce = int(httpx.get(f"{net.url}/v1/accounts/{key.address.hex()}").json()["nonce"])
        _submit_batch(net, key, nonce, 64)
        workers = _children(net.nodes[0].process.pid)
        assert workers
        net.kill(signal.SIGKILL)
        # Nobody is left to stop them: they notice their parent is gone and end.
        wait_until(
            lambda: not any(_alive(pid) for pid in workers),
            timeout=10,
            what="the verifier processes of a killed node to end",
        )
    finally:
        net.stop()
