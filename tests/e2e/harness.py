"""Real node processes for end-to-end tests.

``LocalNetwork`` creates a network folder like ``civic up`` does and starts the node as
its own process on a free port; tests wait with ``wait_until`` (never a bare sleep) and
can SIGKILL, SIGSTOP or restart the node. Data directories stay in pytest's ``tmp_path``
so they can be inspected after a failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from civicledger.chain.genesis import ConsensusParams
from civicledger.consensus.bft.engine import TimeoutConfig
from civicledger.crypto.keys import KeyPair
from civicledger.node.localnet import create_network
from civicledger.node.ports import free_ports

PASSPHRASE = "e2e-passphrase"


def free_port() -> int:
    """A port free now, below the kernel's ephemeral range (see ``node.ports``)."""
    return free_ports(1)[0]


def wait_until(
    predicate: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


def civic(
    *args: str, env: dict[str, str] | None = None, check: bool = False, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the ``civic`` CLI as a user would, in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(
        [sys.executable, "-m", "civicledger", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"civic {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


class NodeProcess:
    """One node of a local network, run as its own process."""

    def __init__(self, config: Path, api_port: int, p2p_port: int) -> None:
        self.config = config
        self.home = config.parent
        self.port = api_port
        self.p2p_port = p2p_port
        self.url = f"http://127.0.0.1:{api_port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def env(self) -> dict[str, str]:
        return {
            "CIVIC_HOME": str(self.home),
            "CIVIC_PASSPHRASE_FILE": str(self.home / "passphrase"),
            "CIVIC_NODE": self.url,
        }

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, *, wait: bool = True) -> None:
        assert not self.running
        self.starts += 1
        log = (self.home / f"node-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "civicledger", "node", "start", "--config", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        if wait:
            wait_until(self.is_ready, timeout=60, what=f"node at {self.url} to answer")

    def log(self) -> str:
        return (self.home / f"node-{self.starts}.log").read_text()

    def is_ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"node exited with {self.process.returncode}:\n{self.log()}")
        try:
            return httpx.get(f"{self.url}/v1/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(f"{self.url}/v1/status", timeout=5).json()
        return result

    def height(self) -> int:
        return int(self.status()["head"]["height"])

    def block_hash(self, height: int) -> str:
        block = httpx.get(f"{self.url}/v1/blocks/{height}", timeout=5).json()
        return str(block["header"]["hash"])


class LocalNetwork:
    """A network of ``validators`` nodes; with one node it also acts as that node."""

    def __init__(
        self,
        home: Path,
        *,
        validators: int = 1,
        funded: list[KeyPair] | None = None,
        block_interval_ms: int = 100,
        empty_block_interval_ms: int = 0,
        timeouts: TimeoutConfig | None = None,
        allowed_nodes: tuple[bytes, ...] = (),
        byzantine: dict[int, str] | None = None,
    ) -> None:
        api_ports = [free_port() for _ in range(validators)]
        p2p_ports = [free_port() for _ in range(validators)]
        configs = create_network(
            home,
            validators=validators,
            api_ports=api_ports,
            p2p_ports=p2p_ports,
            passphrase=PASSPHRASE,
            balances=tuple((k.address, 10**12) for k in funded or []),
            params=ConsensusParams(
                block_interval_ms=block_interval_ms,
                empty_block_interval_ms=empty_block_interval_ms,
            ),
            timeouts=timeouts
            or TimeoutConfig(
                propose_ms=1_000,
                prevote_ms=500,
                precommit_ms=500,
                propose_delta_ms=250,
                prevote_delta_ms=250,
                precommit_delta_ms=250,
            ),
            allowed_nodes=allowed_nodes,  # type: ignore[arg-type]
            byzantine=byzantine,
        )
        self.nodes = [
            NodeProcess(c, a, p) for c, a, p in zip(configs, api_ports, p2p_ports, strict=True)
        ]
        first = self.nodes[0]
        self.home, self.url, self.config, self.env = first.home, first.url, first.config, first.env

    def start(self, *, wait: bool = True) -> None:
        for node in self.nodes:
            if not node.running:
                node.start(wait=False)
        if wait:
            for node in self.nodes:
                wait_until(node.is_ready, timeout=60, what=f"node at {node.url} to answer")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.nodes[0].kill(sig)

    def height(self) -> int:
        return self.nodes[0].height()
