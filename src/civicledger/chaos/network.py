"""The local networks that chaos scenarios and the crash loop run: node folders made with
``create_network``, funded workload accounts, short round timeouts, and ports chosen below
the kernel's ephemeral range (a proxy or client bound to port 0 can never take a node's
port between the choice and the node's start)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from civicledger.chain.genesis import ConsensusParams
from civicledger.chaos.workload import INITIAL_BALANCE
from civicledger.consensus.bft.engine import TimeoutConfig
from civicledger.crypto.keys import KeyPair
from civicledger.errors import LedgerError
from civicledger.node.localnet import create_network

__all__ = ["NODE_PORTS", "PASSPHRASE", "TIMEOUTS", "create_chaos_network", "free_node_ports"]

#: The development passphrase of the nodes' keystores (local test networks only).
PASSPHRASE = "chaos-passphrase"
#: Short round timeouts, as in the end-to-end tests: recovery within a few seconds.
TIMEOUTS = TimeoutConfig(
    propose_ms=1_000,
    prevote_ms=500,
    precommit_ms=500,
    propose_delta_ms=250,
    prevote_delta_ms=250,
    precommit_delta_ms=250,
)
#: Node ports come from here, below Linux's ephemeral range (32768..60999).
NODE_PORTS = (20_000, 32_000)


def free_node_ports(count: int) -> list[int]:
    """``count`` distinct ports, free right now, from ``NODE_PORTS``."""
    chooser = random.SystemRandom()
    ports: list[int] = []
    for _ in range(1000 + 10 * count):
        if len(ports) == count:
            return ports
        port = chooser.randrange(*NODE_PORTS)
        if port in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
    raise LedgerError(f"no {count} free ports found in {NODE_PORTS[0]}..{NODE_PORTS[1]}")


def create_chaos_network(
    home: Path, count: int, accounts: list[KeyPair], *, block_interval_ms: int
) -> tuple[list[Path], list[int], list[int]]:
    """Write ``count`` validator nodes under ``home`` with ``accounts`` funded; return
    their config paths, API ports and p2p ports."""
    ports = free_node_ports(2 * count)
    api_ports, p2p_ports = ports[:count], ports[count:]
    configs = create_network(
        home,
        validators=count,
        api_ports=api_ports,
        p2p_ports=p2p_ports,
        passphrase=PASSPHRASE,
        balances=tuple((k.address, INITIAL_BALANCE) for k in accounts),
        params=ConsensusParams(block_interval_ms=block_interval_ms, empty_block_interval_ms=2_000),
        timeouts=TIMEOUTS,
    )
    return configs, api_ports, p2p_ports
