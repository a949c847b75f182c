"""Checking many transaction signatures at once, on every core.

Signature checks are most of a node's work under load, and the node's own thread is busy
with everything else (HTTP, decoding, admission, execution, commit). libsodium checks a
signature with the GIL released, but every check starts and ends in Python, so a thread
checking signatures *while the event loop works* must win the GIL back from it once per
signature: such threads mostly wait. Two paths therefore:

* ``verify_async`` (admission, while the event loop goes on with other requests and
  consensus) sends the batch to verifier *processes*, one slice each, over pipes the
  event loop itself reads and writes: no helper thread of the node needs the GIL on the
  way (``crypto/batch.py`` has the frames).
* ``__call__`` (a proposal's transactions, while the event loop waits for the answer)
  checks on the calling thread and a thread pool: the waiting loop holds no GIL.

A verifier process that dies fails its pending batches over to the thread pool and is
started again on the next batch: a node never depends on a helper process to tell a
valid signature from an invalid one. Verifier processes end when their pipe closes, so a
node that is stopped or killed leaves none behind. A process that does not answer within
``VERIFY_TIMEOUT_S`` is replaced. One verifier serves one event loop at a time (the node's);
a later loop in the same thread (tests) gets fresh processes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import struct
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from civicledger.chain.transaction import Transaction
from civicledger.crypto.batch import Triple, check_signatures, encode_request

__all__ = ["MAX_WORKERS", "MIN_PARALLEL_BATCH", "SignatureVerifier"]

log = logging.getLogger(__name__)

#: Smaller batches are checked on the calling thread or the pool (handing over costs more).
MIN_PARALLEL_BATCH = 16
#: At most this many verifier processes or threads.
MAX_WORKERS = 16
#: A batch not answered within this long (s) is checked on threads instead, and the
#: processes that owe answers are replaced.
VERIFY_TIMEOUT_S = 10.0
#: A process with this much unsent work (bytes) is not reading: batches go to threads.
MAX_UNSENT = 8 * 1024 * 1024

_U32 = struct.Struct(">I")


class WorkerGone(Exception):
    """A verifier process ended before answering."""


def _triples(txs: Sequence[Transaction]) -> list[Triple]:
    return [(tx.sender, tx.signing_bytes, tx.signature) for tx in txs]


class _Worker:
    """One verifier process, written to and read by the event loop itself: the pipes are
    non-blocking, a request that does not fit the pipe waits in ``_unsent`` for it to
    drain, and answers settle the pending batches in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.process = subprocess.Popen(
            [sys.executable, "-m", "civicledger.crypto.batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._out = self.process.stdin.fileno()
        self._in = self.process.stdout.fileno()
        os.set_blocking(self._out, False)
        os.set_blocking(self._in, False)
        self.pending: collections.deque[tuple[asyncio.Future[list[bool]], int]] = (
            collections.deque()
        )
        self.closed = False
        self._unsent = bytearray()
        self._received = bytearray()
        loop.add_reader(self._in, self._on_readable)

    @property
    def usable(self) -> bool:
        return not self.closed and self.process.poll() is None and not self.loop.is_closed()

    def ask(self, items: list[Triple]) -> asyncio.Future[list[bool]]:
        """The answers for ``items``, once the process gives them. Raises ``WorkerGone``
        at once if the process is gone or has too much unsent work (it is stuck)."""
        if self.closed:
            raise WorkerGone("verifier process ended")
        if len(self._unsent) > MAX_UNSENT:
            raise WorkerGone(f"verifier process is not reading ({len(self._unsent)} bytes wait)")
        frame = encode_request(items)  # before queueing: a refusal must not shift answers
        future: asyncio.Future[list[bool]] = self.loop.create_future()
        self.pending.append((future, len(items)))
        was_waiting = bool(self._unsent)
        self._unsent += frame
        if not was_waiting:
            self._on_writable()
        return future

    def _on_writable(self) -> None:
        try:
            written = os.write(self._out, self._unsent)
        except BlockingIOError:
            written = 0
        except OSError as exc:  # the process is gone (EPIPE)
            self._fail(exc)
            return
        del self._unsent[:written]
        if self._unsent:
            self.loop.add_writer(self._out, self._on_writable)
        else:
            self.loop.remove_writer(self._out)

    def _on_readable(self) -> None:
        try:
            data = os.read(self._in, 1 << 20)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fail(exc)
            return
        if not data:
            self._fail(None)
            return
        self._received += data
        while len(self._received) >= _U32.size:
            (count,) = _U32.unpack_from(self._received, 0)
            end = _U32.size + count
            if len(self._received) < end:
                return
            answer = [bool(b) for b in self._received[_U32.size : end]]
            del self._received[:end]
            if not self.pending:
                self._fail(None)  # an answer nobody asked for: the process is broken
                return
            future, expected = self.pending.popleft()
            if future.done():
                continue
            if len(answer) != expected:
                future.set_exception(WorkerGone("verifier answered the wrong count"))
            else:
                future.set_result(answer)

    def _fail(self, exc: BaseException | None) -> None:
        self._detach()
        while self.pending:
            future, _ = self.pending.popleft()
            if not future.done():
                future.set_exception(WorkerGone(f"verifier process ended ({exc or 'EOF'})"))
        # Reap the process once it has exited (no zombie left until the next batch).
        if not self.loop.is_closed():
            self.loop.call_later(1.0, self.process.poll)

    def _detach(self) -> None:
        if not self.closed and not self.loop.is_closed():
            self.loop.remove_reader(self._in)
            self.loop.remove_writer(self._out)
        self.closed = True

    def close(self, *, kill: bool = False) -> None:
        """End the process (it stops at the end of its input; ``kill``: at once) and
        settle what it still owed with ``WorkerGone``."""
        if not self.closed and not self.loop.is_closed():
            try:
                here = asyncio.get_running_loop() is self.loop
            except RuntimeError:
                here = False
            if here:
                self._fail(None)
            else:
                self.loop.call_soon_threadsafe(self._fail, None)
        self.closed = True
        if kill:
            self.process.kill()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class SignatureVerifier:
    """``verifier(txs)`` and ``await verifier.verify_async(txs)`` are
    ``[tx.is_signature_valid() for tx in txs]``, computed on ``workers`` threads (the
    calling one included) and, for ``verify_async``, ``workers`` processes (default: one
    each per core; ``processes=False``: threads only)."""

    def __init__(self, workers: int | None = None, *, processes: bool = True) -> None:
        count = workers if workers is not None else os.cpu_count() or 1
        self.workers = max(1, min(MAX_WORKERS, count))
        self.processes = processes
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="verify")
        self._procs: list[_Worker] = []
        self._closed = False

    def _slices(self, items: list[Triple]) -> list[list[Triple]]:
        size = -(-len(items) // self.workers)
        return [items[i : i + size] for i in range(0, len(items), size)]

    def __call__(self, txs: Sequence[Transaction]) -> list[bool]:
        items = _triples(txs)
        if self._closed or self.workers == 1 or len(items) < MIN_PARALLEL_BATCH:
            return check_signatures(items)
        first, *rest = self._slices(items)
        others = [self._pool.submit(check_signatures, part) for part in rest]
        results = check_signatures(first)
        for future in others:
            results.extend(future.result())
        return results

    async def _on_threads(self, items: list[Triple]) -> list[bool]:
        loop = asyncio.get_running_loop()
        parts = await asyncio.gather(
            *(loop.run_in_executor(self._pool, check_signatures, p) for p in self._slices(items))
        )
        return [ok for part in parts for ok in part]

    def _workers(self) -> list[_Worker]:
        loop = asyncio.get_running_loop()
        for i in range(self.workers):
            if i < len(self._procs):
                worker = self._procs[i]
                if worker.usable and worker.loop is loop:
                    continue
                if worker.loop is loop:
                    log.warning("verifier process %d ended; starting another", i)
                worker.close(kill=True)
                self._procs[i] = _Worker(loop)
            else:
                self._procs.append(_Worker(loop))
        return self._procs

    async def verify_async(self, txs: Sequence[Transaction]) -> list[bool]:
        """The same answers, computed while the event loop goes on."""
        items = _triples(txs)
        if not items:
            return []
        if self._closed:
            return check_signatures(items)
        if not self.processes or len(items) < MIN_PARALLEL_BATCH:
            return await self._on_threads(items)
        try:
            workers = self._workers()
            asked = [w.ask(part) for w, part in zip(workers, self._slices(items), strict=False)]
            parts = await asyncio.wait_for(asyncio.gather(*asked), VERIFY_TIMEOUT_S)
        except TimeoutError:
            # A process that does not answer (stopped, stuck) is replaced.
            stuck = [w for w in self._procs if w.pending]
            log.warning("%d verifier process(es) did not answer; replacing them", len(stuck))
            for worker in stuck:
                worker.close(kill=True)
            return await self._on_threads(items)
        except (WorkerGone, OSError, ValueError) as exc:
            log.warning("signature check failed over to threads: %s", exc)
            return await self._on_threads(items)
        return [ok for part in parts for ok in part]

    def close(self) -> None:
        self._closed = True
        for worker in self._procs:
            worker.close()
        self._procs.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
