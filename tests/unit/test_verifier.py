"""Checking many signatures at once in verifier processes or threads
(``civicledger.node.verifier``)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from concurrent.futures import ProcessPoolExecutor

import pytest

from civicledger.chain.transaction import Transaction, make_transaction
from civicledger.crypto.keys import KeyPair
from civicledger.node.verifier import MIN_PARALLEL_BATCH, SignatureVerifier
from civicledger.types import Signature


def _batch(count: int) -> list[Transaction]:
    key = KeyPair.from_seed(bytes(range(32)))
    txs = [
        make_transaction(
            key, chain_id="civic-test", nonce=n, contract="accounts", method="transfer"
        )
        for n in range(count)
    ]
    # Every third one carries another transaction's signature.
    for i in range(0, count, 3):
        txs[i] = dataclasses.replace(
            txs[i],
            signature=Signature(txs[(i + 1) % count].signature),
            _encoded=b"",
            _tx_id=b"",
        )
    return txs


@pytest.mark.parametrize("processes", [True, False])
def test_parallel_verification_gives_each_transaction_its_own_answer(processes: bool) -> None:
    verifier = SignatureVerifier(3, processes=processes)
    try:
        for count in (0, 2, MIN_PARALLEL_BATCH - 1, MIN_PARALLEL_BATCH, 100):
            txs = _batch(count)
            assert verifier(txs) == [i % 3 != 0 for i in range(count)]
    finally:
        verifier.close()


def test_small_batches_are_checked_on_the_calling_thread() -> None:
    verifier = SignatureVerifier(1)
    verifier.close()  # a closed pool would refuse work: the calling thread does it
    txs = _batch(MIN_PARALLEL_BATCH - 1)
    assert verifier(txs) == [tx.is_signature_valid() for tx in txs]


def test_a_broken_pool_is_started_again_and_the_batch_still_checked() -> None:
    verifier = SignatureVerifier(2)
    try:
        txs = _batch(40)
        assert verifier(txs) == [i % 3 != 0 for i in range(40)]
        pool = verifier._pool
        assert isinstance(pool, ProcessPoolExecutor)
        for process in list(pool._processes.values()):  # a verifier process dies
            os.kill(process.pid, signal.SIGKILL)
            process.join()
        assert verifier(txs) == [i % 3 != 0 for i in range(40)]
        assert asyncio.run(verifier.verify_async(txs)) == [i % 3 != 0 for i in range(40)]
        assert verifier._pool is not pool
    finally:
        verifier.close()


def test_verify_async_leaves_the_work_to_the_pool() -> None:
    verifier = SignatureVerifier(2)
    try:
        txs = _batch(50)
        assert asyncio.run(verifier.verify_async(txs)) == [i % 3 != 0 for i in range(50)]
        assert asyncio.run(verifier.verify_async([])) == []
    finally:
        verifier.close()
