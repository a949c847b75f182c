"""End-to-end: the deployment ceremony of docs/guides/running-a-network.md, on loopback.

Three agencies each create a validator key, a coordinator writes the genesis, each node
is configured with its peers and started; an observer node joins; a transaction sent to
one node is committed everywhere.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.harness import NodeProcess, civic, free_port, wait_until

pytestmark = pytest.mark.slow


def test_three_agencies_and_an_observer(tmp_path):
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("agency secret\n")
    homes = [tmp_path / name for name in ("ministry", "registry", "bank", "observer")]
    api = [free_port() for _ in homes]
    p2p = [free_port() for _ in homes]

    # 1. Each agency creates its key and sends the public key to the coordinator.
    keys = []
    for home in homes:
        args = ["init", "--home", str(home), "--passphrase-file", str(passphrase)]
        if home.name == "observer":
            args.append("--observer")
        out = civic(*args, check=True).stdout
        keys.append(out.split("public key:")[1].split()[0])
        assert "send the public key" in out

    # 2. The coordinator writes the genesis.
    genesis = tmp_path / "genesis.json"
    civic(
        "genesis",
        "create",
        "--chain-id",
        "gov-net-1",
        *[arg for key in keys[:3] for arg in ("--validator", key)],
        "--node",
        keys[3],
        "--block-interval-ms",
        "200",
        "-o",
        str(genesis),
        check=True,
    )
    assert len(json.loads(genesis.read_text())["validators"]) == 3

    # 3. Each node completes its config with the genesis and its peers, and starts.
    nodes = []
    for i, home in enumerate(homes):
        peers = [a for j, port in enumerate(p2p) if j != i for a in ("--peer", f"127.0.0.1:{port}")]
        args = [
            "init",
            "--home",
            str(home),
            "--passphrase-file",
            str(passphrase),
            "--genesis",
            str(genesis),
            "--api-port",
            str(api[i]),
            "--p2p-host",
            "127.0.0.1",
            "--p2p-port",
            str(p2p[i]),
            *peers,
        ]
        if home.name == "observer":
            args.append("--observer")
        civic(*args, check=True)
        (home / "passphrase").write_text(passphrase.read_text())
        config = home / "config.toml"
        config.write_text(
            config.read_text().replace("[node]\n", '[node]\npassphrase_file = "passphrase"\n')
        )
        nodes.append(NodeProcess(config, api[i], p2p[i]))
    try:
        for node in nodes:
            node.start(wait=False)
        for node in nodes:
            wait_until(node.is_ready, timeout=60, what="node to answer")
        wait_until(
            lambda: all(
                len(httpx.get(f"{n.url}/v1/status").json()["consensus"] or {})
                and n.status()["consensus"]["peers"] == 3
                for n in nodes
            ),
            timeout=60,
            what="every node connected to the three others",
        )
        env = {
            "CIVIC_HOME": str(homes[0]),
            "CIVIC_PASSPHRASE_FILE": str(passphrase),
            "CIVIC_NODE": nodes[1].url,
        }
        document = tmp_path / "statute.txt"
        document.write_text("Statute 1\n")
        # The keystore of the ministry holds the "validator" key: use it as a signer.
        sent = civic(
            "doc",
            "register",
            str(document),
            "--id",
            "statute-1",
            "--title",
            "Statute 1",
            "--key",
            "validator",
            env=env,
            check=True,
        )
        height = int(sent.stdout.split("in block ")[1].split()[0])
        wait_until(
            lambda: all(n.height() >= height for n in nodes),
            timeout=60,
            what="every node, the observer too, at the block",
        )
        hashes = {n.block_hash(height) for n in nodes}
        assert len(hashes) == 1
        check = civic("doc", "verify", str(document), env={**env, "CIVIC_NODE": nodes[3].url})
        assert check.returncode == 0 and "CURRENT" in check.stdout
    finally:
        for node in nodes:
            node.stop()
