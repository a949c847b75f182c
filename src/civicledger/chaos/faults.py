"""Process faults on one node: kill, pause, restart, clock skew, disk full, damaged WAL.

``ChaosNode`` wraps one node process of a chaos network. The faults need no kernel
support beyond what an unprivileged Linux process has:

- **kill / pause / restart**: SIGKILL; SIGSTOP then SIGCONT; a clean stop (SIGINT) and a
  new process.
- **clock skew**: the node runs under libfaketime (``LD_PRELOAD``) reading its offset from
  a file that the runner rewrites; only the wall clock moves
  (``FAKETIME_DONT_FAKE_MONOTONIC=1``), so timers keep working and block times skew.
  ``scripts/install-faketime.sh`` installs the library (``make bootstrap`` calls it).
- **disk full**: the running process's file-size limit (``RLIMIT_FSIZE``, set with
  ``prlimit``) drops to one byte, so every write to the database fails with EFBIG (CPython
  ignores SIGXFSZ); the limit is restored when the fault ends.
- **damaged write-ahead data**: the node is killed, its ``chain.db-wal`` (or, if there
  is none, ``chain.db``) is truncated or has bytes overwritten, or the header of
  ``chain.db`` is zeroed and the WAL removed, or a page in the middle of ``chain.db``
  is overwritten after a checkpoint, and the node is started again. It must
  recover or refuse with a clear message; on refusal the runner runs ``civic node
  resync`` and starts it once more. If resync refuses too (it cannot carry over the
  record of the last signature), the node stays down as a crashed validator. The
  events of the run record which of these happened.
"""

from __future__ import annotations

import glob
import os
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

__all__ = ["ChaosNode", "damage_database", "find_libfaketime"]

FAKETIME_LIBRARIES = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)


def find_libfaketime() -> Path | None:
    """The libfaketime shared library, or ``None`` if it is not installed."""
    for path in FAKETIME_LIBRARIES:
        if Path(path).exists():
            return Path(path)
    found = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    return Path(found[0]) if found else None


def damage_database(data_dir: Path, mode: str) -> str:
    """Truncate or corrupt the node's write-ahead log (or database); say what was done."""
    wal = data_dir / "chain.db-wal"
    target = wal if wal.exists() and wal.stat().st_size > 0 else data_dir / "chain.db"
    if mode == "header":
        # The database's own header (and the log that may hold a newer copy of it):
        # SQLite no longer recognises the file.
        with (data_dir / "chain.db").open("r+b") as f:
            f.write(b"\x00" * 100)
        if wal.exists():
            wal.unlink()
        return "zeroed the 100-byte header of chain.db and removed chain.db-wal"
    if mode == "page":
        # Fold the log into the database (as a checkpoint would), then overwrite a page
        # in the middle of the file: blocks, transactions or state that SQLite will
        # find malformed when it reads them.
        target = data_dir / "chain.db"
        with sqlite3.connect(target) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        size = target.stat().st_size
        offset = (size // 2) // 4096 * 4096
        with target.open("r+b") as f:
            f.seek(offset)
            f.write(b"\xde\xad\xbe\xef" * 1024)
        return f"overwrote page {offset // 4096} of chain.db ({size} bytes) after a checkpoint"
    size = target.stat().st_size
    if mode == "truncate":
        # Cut in the middle of a page: the last frames become incomplete.
        keep = max(0, size // 2 - 123)
        with target.open("r+b") as f:
            f.truncate(keep)
        return f"truncated {target.name} from {size} to {keep} bytes"
    offset = max(0, size // 2)
    with target.open("r+b") as f:
        f.seek(offset)
        f.write(b"\xde\xad\xbe\xef" * 1024)
    return f"overwrote 4 KiB of {target.name} ({size} bytes) at offset {offset}"


class ChaosNode:
    """One node process of a chaos network."""

    def __init__(self, index: int, config: Path, api_port: int, p2p_port: int) -> None:
        self.index = index
        self.config = config
        self.home = config.parent
        self.api_port = api_port
        self.p2p_port = p2p_port
        self.url = f"http://127.0.0.1:{api_port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False
        #: Set when a fault stopped the process (so its exit is not a crash).
        self.stopped_by_us = False
        self.starts = 0
        #: Path of the libfaketime offset file when the node runs under faketime.
        self.faketime_file: Path | None = None

    @property
    def name(self) -> str:
        return f"node{self.index}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def serving(self) -> bool:
        """Running and not paused: it can answer requests."""
        return self.running and not self.paused

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def log_path(self) -> Path:
        return self.home / f"node-{self.starts}.log"

    def use_faketime(self, library: Path) -> None:
        self.faketime_file = self.home / "faketime"
        self.faketime_file.write_text("+0\n")
        self._faketime_library = library

    def set_skew(self, seconds: float) -> None:
        if self.faketime_file is None:
            raise RuntimeError(f"{self.name} does not run under faketime")
        self.faketime_file.write_text(f"{seconds:+.3f}\n")

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self.starts += 1
        env = dict(os.environ)
        if self.faketime_file is not None:
            env.update(
                LD_PRELOAD=str(self._faketime_library),
                FAKETIME_TIMESTAMP_FILE=str(self.faketime_file),
                FAKETIME_DONT_FAKE_MONOTONIC="1",
                FAKETIME_NO_CACHE="1",
            )
        with self.log_path().open("wb") as log:
            self.stopped_by_us = False
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "civicledger",
                    "node",
                    "start",
                    "--config",
                    str(self.config),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.paused = False

    def kill(self) -> None:
        self.stopped_by_us = True
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)
        self.paused = False

    def pause(self) -> None:
        if self.process is not None and self.running:
            self.process.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.process is not None and self.running:
            self.process.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        """Stop cleanly (SIGINT), or kill after 20 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.stopped_by_us = True
        if self.paused:
            self.resume()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def set_disk_full(self, full: bool) -> None:
        """Lower (or restore) the process's file-size limit."""
        if self.process is None or not self.running:
            return
        _, hard = resource.prlimit(self.process.pid, resource.RLIMIT_FSIZE)
        soft = 1 if full else hard
        resource.prlimit(self.process.pid, resource.RLIMIT_FSIZE, (soft, hard))

    def log_text(self) -> str:
        try:
            return self.log_path().read_text(errors="replace")
        except OSError:
            return ""

    def exit_message(self, lines: int = 5) -> str:
        """The last lines of the current log, for a node that exited."""
        try:
            text = self.log_path().read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])

    def resync(self) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "civicledger", "node", "resync", "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        out = (result.stdout + result.stderr).strip().replace("\n", " | ")
        if result.returncode != 0:
            raise RuntimeError(f"civic node resync failed: {out}")
        return out
