"""Checking many transaction signatures at once, on every core.

Signature checks are most of a node's work under load. libsodium does them with the GIL
released (PyNaCl calls it through cffi), so threads of one process verify in parallel:
a batch is cut into one slice per core, the calling thread verifies the first slice and
a pool thread each of the others. ``verify_async`` leaves every slice to the pool, so the
event loop goes on (with the next request, consensus messages) meanwhile.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from civicledger.chain.transaction import Transaction
from civicledger.mempool.pool import verify_each

__all__ = ["MIN_PARALLEL_BATCH", "SignatureVerifier"]

#: Smaller batches are checked on the calling thread (handing over costs more).
MIN_PARALLEL_BATCH = 16


class SignatureVerifier:
    """``verifier(txs)`` is ``[tx.is_signature_valid() for tx in txs]``, computed on
    ``threads`` threads (default: one per core)."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = max(1, threads if threads is not None else os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="verify")

    def _slices(self, txs: Sequence[Transaction]) -> list[Sequence[Transaction]]:
        size = -(-len(txs) // self.threads)
        return [txs[i : i + size] for i in range(0, len(txs), size)]

    def __call__(self, txs: Sequence[Transaction]) -> list[bool]:
        if self.threads == 1 or len(txs) < MIN_PARALLEL_BATCH:
            return verify_each(txs)
        first, *rest = self._slices(txs)
        others = [self._pool.submit(verify_each, part) for part in rest]
        results = verify_each(first)
        for future in others:
            results.extend(future.result())
        return results

    async def verify_async(self, txs: Sequence[Transaction]) -> list[bool]:
        """The same answers, computed on the pool's threads."""
        if not txs:
            return []
        loop = asyncio.get_running_loop()
        parts = await asyncio.gather(
            *(loop.run_in_executor(self._pool, verify_each, part) for part in self._slices(txs))
        )
        return [ok for part in parts for ok in part]

    def close(self) -> None:
        self._pool.shutdown(wait=True)
