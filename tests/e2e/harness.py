"""Real node processes for end-to-end tests.

``LocalNetwork`` creates a network folder like ``civic up`` does and starts the node as
its own process on a free port; tests wait with ``wait_until`` (never a bare sleep) and
can SIGKILL, SIGSTOP or restart the node. Data directories stay in pytest's ``tmp_path``
so they can be inspected after a failure.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from civicledger.chain.genesis import ConsensusParams
from civicledger.crypto.keys import KeyPair
from civicledger.node.localnet import LOCALNET_CHAIN_ID, create_single_validator_network

PASSPHRASE = "e2e-passphrase"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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


class LocalNetwork:
    """One validator node in its own process."""

    def __init__(
        self,
        home: Path,
        *,
        funded: list[KeyPair] | None = None,
        block_interval_ms: int = 100,
        empty_block_interval_ms: int = 0,
    ) -> None:
        self.home = home / "node0"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = create_single_validator_network(
            self.home,
            chain_id=LOCALNET_CHAIN_ID,
            port=self.port,
            passphrase=PASSPHRASE,
            balances=tuple((k.address, 10**12) for k in funded or []),
            params=ConsensusParams(
                block_interval_ms=block_interval_ms,
                empty_block_interval_ms=empty_block_interval_ms,
            ),
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def env(self) -> dict[str, str]:
        return {
            "CIVIC_HOME": str(self.home),
            "CIVIC_PASSPHRASE_FILE": str(self.home / "passphrase"),
            "CIVIC_NODE": self.url,
        }

    def start(self, *, wait: bool = True) -> None:
        assert self.process is None or self.process.poll() is not None
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

    def is_ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = (self.home / f"node-{self.starts}.log").read_text()
            raise AssertionError(f"node exited with {self.process.returncode}:\n{log}")
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

    def height(self) -> int:
        return int(httpx.get(f"{self.url}/v1/status", timeout=5).json()["head"]["height"])
