"""Creating local networks: one folder per node with keys, the shared genesis and config.

``create_network(home, validators=4)`` writes ``home/node0 ... home/node3``; each node has
its own encrypted validator key, the same ``genesis.json``, and a ``config.toml`` that
lists every other node as a peer. ``node0`` also holds an ``issuer`` key that may mint the
native currency. A development passphrase is written to each node's ``passphrase``
file: that is for local networks only; real deployments use ``civic init``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from civicledger.chain.block import Validator, ValidatorSet
from civicledger.chain.genesis import ConsensusParams, Genesis
from civicledger.consensus.bft.engine import TimeoutConfig
from civicledger.crypto.keystore import Keystore
from civicledger.node.config import ApiConfig, NodeConfig, render_config
from civicledger.p2p.peers import P2PConfig
from civicledger.types import Address, PublicKey

__all__ = [
    "LOCALNET_CHAIN_ID",
    "create_network",
    "start_node_process",
]

LOCALNET_CHAIN_ID = "civic-localnet"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def create_network(
    home: Path,
    *,
    validators: int = 4,
    node_homes: list[Path] | None = None,
    chain_id: str = LOCALNET_CHAIN_ID,
    api_ports: list[int],
    p2p_ports: list[int],
    passphrase: str,
    issuer: str = "issuer",
    balances: tuple[tuple[Address, int], ...] = (),
    params: ConsensusParams | None = None,
    timeouts: TimeoutConfig | None = None,
    allowed_nodes: tuple[PublicKey, ...] = (),
    byzantine: dict[int, str] | None = None,
) -> list[Path]:
    """Write a network of ``validators`` nodes under ``home``; return their config paths.

    ``byzantine`` maps a node's index to a deliberate fault for fault-injection tests
    (``[byzantine] mode`` in its configuration)."""
    if len(api_ports) != validators or len(p2p_ports) != validators:
        raise ValueError("one API port and one p2p port per validator")
    homes = node_homes or [home / f"node{i}" for i in range(validators)]
    keys = []
    for node_home in homes:
        node_home.mkdir(parents=True, exist_ok=True)
        keys.append(Keystore(node_home / "keys").create("validator", passphrase))
        passphrase_path = node_home / "passphrase"
        passphrase_path.write_text(passphrase + "\n")
        passphrase_path.chmod(0o600)
    issuer_key = Keystore(homes[0] / "keys").create(issuer, passphrase)
    genesis = Genesis(
        chain_id=chain_id,
        time_ms=_now_ms(),
        validators=ValidatorSet.of([Validator(k.public_key, 1) for k in keys]),
        issuers=(issuer_key.address,),
        balances=balances,
        params=params or ConsensusParams(),
        nodes=allowed_nodes,
    )
    genesis_text = json.dumps(genesis.to_json(), indent=2) + "\n"
    configs = []
    for i, node_home in enumerate(homes):
        (node_home / "genesis.json").write_text(genesis_text)
        peers = tuple(f"127.0.0.1:{p}" for j, p in enumerate(p2p_ports) if j != i)
        config = NodeConfig(
            home=node_home,
            name=f"node{i}",
            validator_key="validator",
            passphrase_file=Path("passphrase"),
            api=ApiConfig(port=api_ports[i]),
            p2p=P2PConfig(port=p2p_ports[i], peers=peers),
            timeouts=timeouts or TimeoutConfig(),
            byzantine=(byzantine or {}).get(i),
        )
        config_path = node_home / "config.toml"
        config_path.write_text(render_config(config))
        configs.append(config_path)
    return configs


def start_node_process(config: Path, *, log_level: str = "info") -> subprocess.Popen[bytes]:
    """Start ``civic node start --config CONFIG`` as a process logging to ``node.log``."""
    with (config.parent / "node.log").open("ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "civicledger",
                "node",
                "start",
                "--config",
                str(config),
                "--log-level",
                log_level,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
