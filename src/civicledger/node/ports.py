"""Choosing listening ports for local networks (``civic bench``, chaos runs, tests).

A port is chosen below the kernel's ephemeral range, at random, and checked free by
binding it. A port handed out by ``bind(0)`` would come from the ephemeral range, where
any outgoing connection on the machine may take it between the choice and the node's
start ("address already in use"); below that range only another listener can.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

from civicledger.errors import LedgerError

__all__ = ["free_port_block", "free_ports", "port_range"]

#: Where ports are chosen when the kernel's ephemeral range cannot be read.
DEFAULT_RANGE = (20_000, 32_000)
#: The lowest port chosen: well above the well-known and most registered service ports.
LOWEST = 10_000
_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: Ports handed out by this process, never handed out twice.
_given: set[int] = set()
_chooser = random.SystemRandom()


def port_range() -> tuple[int, int]:
    """The ``[low, high)`` range ports are chosen from: below the ephemeral range."""
    try:
        low_ephemeral = int(_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_RANGE
    if low_ephemeral - LOWEST < 2_000:
        return DEFAULT_RANGE
    return (LOWEST, low_ephemeral)


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports, free right now and not handed out before by this
    process."""
    return [free_port_block(1) for _ in range(count)]


def free_port_block(count: int) -> int:
    """A port ``p`` such that ``p .. p + count - 1`` are all free now and were not handed
    out before by this process (for ``civic up --port``, which numbers nodes in a row)."""
    low, high = port_range()
    for _ in range(2_000):
        base = _chooser.randrange(low, high - count)
        block = range(base, base + count)
        if any(port in _given for port in block):
            continue
        if all(_is_free(port) for port in block):
            _given.update(block)
            return base
    raise LedgerError(f"no {count} free consecutive ports found in {low}..{high}")
