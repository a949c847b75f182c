"""Checking many signatures at once in verifier processes or threads
(``civicledger.node.verifier``)."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import signal

import pytest

from civicledger.chain.transaction import Transaction, make_transaction
from civicledger.crypto.batch import decode_request, encode_request, serve
from civicledger.crypto.keys import KeyPair
from civicledger.node import verifier as verifier_module
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


async def _two_at_once(
    verifier: SignatureVerifier, txs: list[Transaction]
) -> tuple[list[bool], list[bool]]:
    # Two batches in flight at once: each gets its own answers.
    first, second = await asyncio.gather(
        verifier.verify_async(txs), verifier.verify_async(txs[::-1])
    )
    return first, second


def test_parallel_verification_gives_each_transaction_its_own_answer() -> None:
    verifier = SignatureVerifier(3)
    try:
        for count in (0, 2, MIN_PARALLEL_BATCH - 1, MIN_PARALLEL_BATCH, 100):
            txs = _batch(count)
            expected = [i % 3 != 0 for i in range(count)]
            assert verifier(txs) == expected

            first, second = asyncio.run(_two_at_once(verifier, txs))
            assert first == expected and second == expected[::-1]
    finally:
        verifier.close()


def test_small_batches_are_checked_on_the_calling_thread() -> None:
    verifier = SignatureVerifier(2)
    verifier.close()  # a closed pool would refuse work: the calling thread does it
    txs = _batch(MIN_PARALLEL_BATCH - 1)
    assert verifier(txs) == [tx.is_signature_valid() for tx in txs]


def test_a_dead_verifier_process_fails_over_and_is_started_again() -> None:
    verifier = SignatureVerifier(2)
    txs = _batch(40)
    expected = [i % 3 != 0 for i in range(40)]

    async def scenario() -> None:
        assert await verifier.verify_async(txs) == expected
        first = verifier._procs[0].process
        first.kill()  # a verifier process dies (OOM killer, operator)
        first.wait()
        # The batch in hand is still answered, and a new process takes over.
        assert await verifier.verify_async(txs) == expected
        assert await verifier.verify_async(txs) == expected
        assert verifier._procs[0].process is not first
        assert verifier._procs[0].process.poll() is None

    try:
        asyncio.run(scenario())
    finally:
        verifier.close()
    assert all(w.process.poll() is not None for w in verifier._procs) or not verifier._procs


def test_threads_only_gives_the_same_answers() -> None:
    verifier = SignatureVerifier(2, processes=False)
    try:
        txs = _batch(50)
        assert asyncio.run(verifier.verify_async(txs)) == [i % 3 != 0 for i in range(50)]
        assert not verifier._procs
    finally:
        verifier.close()


def test_a_verifier_process_answers_frames_and_stops_at_the_end_of_its_input() -> None:
    txs = _batch(7)
    items = [(tx.sender, tx.signing_bytes, tx.signature) for tx in txs]
    requests = io.BytesIO(encode_request(items) + encode_request(items[:2]))
    answers = io.BytesIO()
    serve(requests, answers)
    expected = bytes(i % 3 != 0 for i in range(7))
    assert answers.getvalue() == (
        (7).to_bytes(4, "big") + expected + (2).to_bytes(4, "big") + expected[:2]
    )
    assert decode_request(encode_request(items)[4:]) == items
    # A malformed frame ends the process instead of answering wrongly.
    for bad in (b"\x00\x00\x00\x05\x00\x00\x00\x02\x00", b"\xff\xff\xff\xff"):
        answers = io.BytesIO()
        serve(io.BytesIO(bad), answers)
        assert answers.getvalue() == b""
    with pytest.raises(ValueError):
        encode_request([(b"short", b"m", b"s" * 64)])


def test_a_verifier_process_that_stops_answering_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(verifier_module, "VERIFY_TIMEOUT_S", 0.5)
    verifier = SignatureVerifier(2)
    txs = _batch(40)
    expected = [i % 3 != 0 for i in range(40)]

    async def scenario() -> None:
        assert await verifier.verify_async(txs) == expected
        stuck = verifier._procs[0].process
        os.kill(stuck.pid, signal.SIGSTOP)  # alive, but never answers
        try:
            assert await verifier.verify_async(txs) == expected  # after the timeout
            assert await verifier.verify_async(txs) == expected
            assert verifier._procs[0].process is not stuck
        finally:
            stuck.kill()
            stuck.wait()

    try:
        asyncio.run(scenario())
    finally:
        verifier.close()


def test_a_request_that_cannot_be_framed_is_checked_on_threads_without_shifting_answers() -> None:
    verifier = SignatureVerifier(2)
    txs = _batch(40)
    huge = dataclasses.replace(
        txs[1], args={"blob": b"x" * 70_000}, _encoded=b"", _tx_id=b""
    )  # signed bytes longer than a frame item may carry

    async def scenario() -> None:
        mixed = [huge, *txs[1:]]
        answers = await verifier.verify_async(mixed)
        assert answers == [tx.is_signature_valid() for tx in mixed]
        # The next batch gets its own answers, not the refused one's.
        assert await verifier.verify_async(txs) == [i % 3 != 0 for i in range(40)]

    try:
        asyncio.run(scenario())
    finally:
        verifier.close()


def test_a_process_with_too_much_unsent_work_is_not_asked(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    verifier = SignatureVerifier(2)
    txs = _batch(40)
    expected = [i % 3 != 0 for i in range(40)]

    async def scenario() -> None:
        assert await verifier.verify_async(txs) == expected
        monkeypatch.setattr(verifier_module, "MAX_UNSENT", -1)  # every process is "full"
        assert await verifier.verify_async(txs) == expected  # answered on threads
        assert "is not reading" in caplog.text  # the full process was not asked
        assert all(not w.pending for w in verifier._procs)
        monkeypatch.setattr(verifier_module, "MAX_UNSENT", 8 * 1024 * 1024)
        assert await verifier.verify_async(txs) == expected

    try:
        asyncio.run(scenario())
    finally:
        verifier.close()
