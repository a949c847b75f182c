"""Checking many transaction signatures at once, on every core.

Signature checks are most of a node's work under load. libsodium does them with the GIL
released (PyNaCl calls it through cffi), so threads of one process verify in parallel:
a batch is cut into one slice per core, the calling thread verifies the first slice and
a pool thread each of the others.
"""

from __future__ import annotations

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
        self._pool = (
            ThreadPoolExecutor(self.threads - 1, thread_name_prefix="verify")
            if self.threads > 1
            else None
        )

    def __call__(self, txs: Sequence[Transaction]) -> list[bool]:
        if self._pool is None or len(txs) < MIN_PARALLEL_BATCH:
            return verify_each(txs)
        size = -(-len(txs) // self.threads)
        slices = [txs[i : i + size] for i in range(0, len(txs), size)]
        others = [self._pool.submit(verify_each, part) for part in slices[1:]]
        results = verify_each(slices[0])
        for future in others:
            results.extend(future.result())
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
