"""The local networks that chaos scenarios and the crash loop run: node folders made with
``create_network``, funded workload accounts, short round timeouts, and ports chosen below
the kernel's ephemeral range (a proxy or client bound to port 0 can never take a node's
port between the choice and the node's start)."""

from __future__ import annotations

from pathlib import Path

from civicledger.chain.genesis import ConsensusParams
from civicledger.chaos.workload import INITIAL_BALANCE
from civicledger.consensus.bft.engine import TimeoutConfig
from civicledger.crypto.keys import KeyPair
from civicledger.node.localnet import create_network
from civicledger.node.ports import free_ports

__all__ = ["PASSPHRASE", "TIMEOUTS", "create_chaos_network"]

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


def create_chaos_network(
    home: Path, count: int, accounts: list[KeyPair], *, block_interval_ms: int
) -> tuple[list[Path], list[int], list[int]]:
    """Write ``count`` validator nodes under ``home`` with ``accounts`` funded; return
    their config paths, API ports and p2p ports."""
    ports = free_ports(2 * count)
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
