"""Ports for local networks come from below the kernel's ephemeral range, free and never
handed out twice by one process."""

import socket
from pathlib import Path

import pytest

from civicledger.errors import LedgerError
from civicledger.node import ports
from civicledger.node.ports import free_port_block, free_ports, port_range


def test_ports_are_chosen_below_the_ephemeral_range():
    low, high = port_range()
    ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range")
    if ephemeral.exists():
        assert high <= int(ephemeral.read_text().split()[0])
    chosen = free_ports(50)
    assert len(set(chosen)) == 50
    assert all(low <= port < high for port in chosen)


def test_a_block_is_consecutive_free_and_not_given_again():
    base = free_port_block(4)
    for port in range(base, base + 4):
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
    again = {free_port_block(4) + i for _ in range(20) for i in range(4)}
    assert not again & set(range(base, base + 4))


def test_a_port_in_use_is_never_chosen(monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        monkeypatch.setattr(ports, "_given", set())
        monkeypatch.setattr(ports, "port_range", lambda: (taken, taken + 2))
        with pytest.raises(LedgerError, match=f"no 1 free consecutive ports found in {taken}"):
            free_port_block(1)
