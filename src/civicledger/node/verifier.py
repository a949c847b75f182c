"""Checking many transaction signatures at once, on every core.

Signature checks are most of a node's work under load, and the node's own thread is busy
with everything else (HTTP, decoding, admission, execution, commit). libsodium checks a
signature with the GIL released, but every check starts and ends in Python: a thread
checking signatures must win the GIL back from the busy event loop once per signature,
so verifier threads of the node's own process mostly wait. Verifier *processes* have a
GIL each: a batch is cut into one slice per process and sent as (public key, signed
bytes, signature) triples, and the answers come back as booleans.

``verify_async`` leaves every slice to the pool, so the event loop goes on (with the next
request, consensus messages) meanwhile. A pool that breaks (a verifier process killed)
is started again, and the batch at hand is checked on the calling thread: a node never
depends on a helper process to tell a valid signature from an invalid one. A verifier
process whose node has died (SIGKILL) ends itself within half a second.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from civicledger.chain.transaction import Transaction
from civicledger.crypto.batch import check_signatures, exit_with_parent

__all__ = ["MAX_WORKERS", "MIN_PARALLEL_BATCH", "SignatureVerifier"]

log = logging.getLogger(__name__)

#: Smaller batches are checked on the calling thread (handing over costs more).
MIN_PARALLEL_BATCH = 16
#: At most this many verifier processes or threads.
MAX_WORKERS = 16

_Triple = tuple[bytes, bytes, bytes]


def _triples(txs: Sequence[Transaction]) -> list[_Triple]:
    return [(tx.sender, tx.signing_bytes, tx.signature) for tx in txs]


class SignatureVerifier:
    """``verifier(txs)`` is ``[tx.is_signature_valid() for tx in txs]``, computed by
    ``workers`` processes (default: one per core), or threads with ``processes=False``."""

    def __init__(self, workers: int | None = None, *, processes: bool = True) -> None:
        count = workers if workers is not None else os.cpu_count() or 1
        self.workers = max(1, min(MAX_WORKERS, count))
        self.processes = processes
        self._pool = self._new_pool()

    def _new_pool(self) -> Executor:
        if not self.processes:
            return ThreadPoolExecutor(self.workers, thread_name_prefix="verify")
        # A fresh interpreter per process: forking the node (threads, open database,
        # event loop) would copy state a child must not touch.
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(self.workers, mp_context=context, initializer=exit_with_parent)

    def _slices(self, items: list[_Triple]) -> list[list[_Triple]]:
        size = -(-len(items) // self.workers)
        return [items[i : i + size] for i in range(0, len(items), size)]

    def _restart(self, exc: BaseException) -> None:
        log.warning("signature verifier pool failed (%s); starting it again", exc)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def __call__(self, txs: Sequence[Transaction]) -> list[bool]:
        items = _triples(txs)
        if len(items) < MIN_PARALLEL_BATCH:
            return check_signatures(items)
        try:
            futures = [self._pool.submit(check_signatures, part) for part in self._slices(items)]
            return [ok for future in futures for ok in future.result()]
        except (BrokenProcessPool, RuntimeError) as exc:
            self._restart(exc)
            return check_signatures(items)

    async def verify_async(self, txs: Sequence[Transaction]) -> list[bool]:
        """The same answers, computed by the pool while the event loop goes on."""
        items = _triples(txs)
        if not items:
            return []
        loop = asyncio.get_running_loop()
        try:
            parts = await asyncio.gather(
                *(
                    loop.run_in_executor(self._pool, check_signatures, part)
                    for part in self._slices(items)
                )
            )
        except (BrokenProcessPool, RuntimeError) as exc:
            self._restart(exc)
            return check_signatures(items)
        return [ok for part in parts for ok in part]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
