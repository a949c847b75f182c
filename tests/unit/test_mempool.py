"""Mempool admission, ordering, bounds and clean-up (``civicledger.mempool.pool``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from civicledger.chain.transaction import MAX_TX_SIZE, Transaction, decode_transaction
from civicledger.contracts.registry import default_registry
from civicledger.crypto.keys import KeyPair
from civicledger.encoding import encode
from civicledger.errors import DecodeError, InvalidTransaction, MempoolFull
from civicledger.mempool.pool import Mempool, MempoolLimits
from civicledger.types import Address

Sign = Callable[..., Transaction]


class Nonces(dict[Address, int]):
    """The committed nonces the mempool sees (a stand-in for the state)."""

    def get_nonce(self, address: Address) -> int:
        return self.get(address, 0)


@pytest.fixture
def nonces() -> Nonces:
    return Nonces()


@pytest.fixture
def make_pool(chain_id: str, nonces: Nonces) -> Callable[..., Mempool]:
    def make(**limits: int) -> Mempool:
        return Mempool(chain_id, default_registry(), nonces.get_nonce, MempoolLimits(**limits))

    return make


@pytest.fixture
def pool(make_pool: Callable[..., Mempool]) -> Mempool:
    return make_pool()


@pytest.fixture
def mint(sign: Sign, alice: KeyPair, bob: KeyPair) -> Callable[..., Transaction]:
    """``mint(nonce, amount=1, key=alice, **kw)``: a small valid transaction."""

    def make(nonce: int, amount: int = 1, key: KeyPair = alice, **kw: object) -> Transaction:
        return sign(key, nonce, "accounts", "mint", {"to": bob.address, "amount": amount}, **kw)

    return make


def refused(pool: Mempool, tx: Transaction | bytes, next_height: int = 1) -> InvalidTransaction:
    """Admit ``tx`` expecting a refusal; check the pool did not change; return the error."""
    before = (len(pool), pool.size_bytes)
    with pytest.raises(InvalidTransaction) as info:
        if isinstance(tx, bytes):
            pool.admit_raw(tx, next_height)
        else:
            pool.admit(tx, next_height)
    assert (len(pool), pool.size_bytes) == before
    assert info.value.message
    return info.value


def with_signature(tx: Transaction, signature: bytes) -> bytes:
    """The encoding of ``tx``'s body with another signature."""
    return encode([*tx.body_value(), signature])


# --- admission -----------------------------------------------------------------------


def test_admitted_transactions_are_kept_in_arrival_order(
    pool: Mempool, mint: Callable[..., Transaction], bob: KeyPair
) -> None:
    b0, a0 = mint(0, key=bob), mint(0)
    for tx in (b0, a0):
        pool.admit(tx, 1)
    assert pool.reap(100, 10**9) == [b0, a0]
    a1, b1 = mint(1), mint(1, key=bob)
    for tx in (a1, b1):
        pool.admit(tx, 1)
    txs = [b0, a0, a1, b1]
    assert len(pool) == 4
    assert pool.size_bytes == sum(len(tx.encoded) for tx in txs)
    assert all(tx.tx_id in pool and pool.get(tx.tx_id) == tx for tx in txs)
    # Each sender's consecutive run is taken where its first transaction arrived.
    assert pool.reap(100, 10**9) == [b0, b1, a0, a1]


def test_admit_raw_decodes_and_returns_the_transaction(
    pool: Mempool, mint: Callable[..., Transaction]
) -> None:
    tx = mint(0)
    admitted = pool.admit_raw(tx.encoded, 1)
    assert admitted == tx
    assert admitted.tx_id == tx.tx_id
    assert pool.get(tx.tx_id) == tx


def test_wrong_chain_id(pool: Mempool, mint: Callable[..., Transaction]) -> None:
    assert refused(pool, mint(0, chain_id="other-net")).code == "wrong_chain_id"


def test_unknown_contract(pool: Mempool, sign: Sign, alice: KeyPair) -> None:
    assert refused(pool, sign(alice, 0, "nosuch", "mint")).code == "unknown_contract"


@pytest.mark.parametrize("method", ["fly", "balance", "is_issuer", "get_method", "methods"])
def test_unknown_method(pool: Mempool, sign: Sign, alice: KeyPair, method: str) -> None:
    # Views (balance, is_issuer) and Python helpers are not callable by transactions.
    assert refused(pool, sign(alice, 0, "accounts", method)).code == "unknown_method"


def test_private_method_names_cannot_even_be_built(sign: Sign, alice: KeyPair) -> None:
    with pytest.raises(InvalidTransaction) as info:
        sign(alice, 0, "accounts", "_credit")
    assert info.value.code == "bad_method"


def test_expired(pool: Mempool, mint: Callable[..., Transaction]) -> None:
    assert refused(pool, mint(0, expiry=4), next_height=5).code == "expired"
    # The expiry height itself is still fine, and 0 means "never expires".
    pool.admit(mint(0, expiry=5), 5)
    pool.admit(mint(1, expiry=0), 10**6)
    assert len(pool) == 2


def test_duplicate(pool: Mempool, mint: Callable[..., Transaction]) -> None:
    tx = mint(0)
    pool.admit(tx, 1)
    assert refused(pool, tx).code == "duplicate"
    assert refused(pool, tx.encoded).code == "duplicate"


def test_nonce_too_low(
    pool: Mempool, mint: Callable[..., Transaction], nonces: Nonces, alice: KeyPair
) -> None:
    nonces[alice.address] = 3
    assert refused(pool, mint(2)).code == "nonce_too_low"
    assert refused(pool, mint(0)).code == "nonce_too_low"
    pool.admit(mint(3), 1)


def test_nonce_gap(make_pool: Callable[..., Mempool], mint: Callable[..., Transaction]) -> None:
    pool = make_pool(max_nonce_gap=5)
    assert refused(pool, mint(6)).code == "nonce_gap"
    assert refused(pool, mint(2**64 - 1)).code == "nonce_gap"
    pool.admit(mint(4), 1)
    assert len(pool) == 1


def test_nonce_exactly_max_gap_ahead_is_admitted_as_documented(
    make_pool: Callable[..., Mempool], mint: Callable[..., Transaction]
) -> None:
    pool = make_pool(max_nonce_gap=5)
    pool.admit(mint(5), 1)  # 5 ahead of the next nonce 0: "at most 5 ahead"
    assert len(pool) == 1


def test_nonce_taken(pool: Mempool, mint: Callable[..., Transaction]) -> None:
    first = mint(0, amount=1)
    pool.admit(first, 1)
    other = mint(0, amount=2)
    assert other.tx_id != first.tx_id
    assert refused(pool, other).code == "nonce_taken"
    assert pool.get(first.tx_id) == first


def test_invalid_signature_garbage(pool: Mempool, mint: Callable[..., Transaction]) -> None:
    tx = mint(0)
    assert refused(pool, with_signature(tx, bytes(64))).code == "invalid_signature"
    flipped = bytearray(tx.signature)
    flipped[10] ^= 0x01
    assert refused(pool, with_signature(tx, bytes(flipped))).code == "invalid_signature"


def test_invalid_signature_over_a_different_transaction(
    pool: Mempool, mint: Callable[..., Transaction]
) -> None:
    signed = mint(0, amount=5)
    forged = mint(0, amount=500)
    raw = with_signature(forged, signed.signature)
    assert decode_transaction(raw).body_value() == forged.body_value()
    assert refused(pool, raw).code == "invalid_signature"
    # The genuine one is still welcome.
    pool.admit(signed, 1)


def test_invalid_signature_by_another_key(
    pool: Mempool, mint: Callable[..., Transaction], bob: KeyPair
) -> None:
    tx = mint(0)  # sender is alice
    assert refused(pool, with_signature(tx, bob.sign(tx.signing_bytes))).code == (
        "invalid_signature"
    )


def test_too_large(pool: Mempool, sign: Sign, alice: KeyPair) -> None:
    # Over the whole-transaction limit: refused before decoding.
    raw = b"\x07" + bytes(MAX_TX_SIZE)
    assert refused(pool, raw).code == "too_large"
    # Arguments over their own limit inside a transaction under the size limit.
    tx = sign(alice, 0, "documents", "register", {"id": "x", "blob": bytes(50_000)})
    assert len(tx.encoded) < MAX_TX_SIZE
    assert refused(pool, tx.encoded).code == "too_large"
    # make_transaction itself refuses a transaction over the size limit.
    with pytest.raises(InvalidTransaction) as info:
        sign(alice, 0, "documents", "register", {"blob": bytes(MAX_TX_SIZE)})
    assert info.value.code == "too_large"


@pytest.mark.parametrize("raw", [b"", b"\x07", b"\xff" * 10, encode([1, 2, 3])])
def test_garbage_is_malformed(pool: Mempool, raw: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        pool.admit_raw(raw, 1)
    assert info.value.code == "malformed"
    assert len(pool) == 0


def test_truncated_transaction_is_malformed(
    pool: Mempool, mint: Callable[..., Transaction]
) -> None:
    raw = mint(0).encoded
    for cut in (1, len(raw) // 2, len(raw) - 1):
        with pytest.raises(DecodeError):
            pool.admit_raw(raw[:cut], 1)
    assert len(pool) == 0


def test_mempool_full_by_count(
    make_pool: Callable[..., Mempool], mint: Callable[..., Transaction], bob: KeyPair
) -> None:
    pool = make_pool(max_txs=2)
    pool.admit(mint(0), 1)
    pool.admit(mint(1), 1)
    before = pool.size_bytes
    with pytest.raises(MempoolFull) as info:
        pool.admit(mint(0, key=bob), 1)
    assert info.value.code == "mempool_full"
    assert (len(pool), pool.size_bytes) == (2, before)


def test_mempool_full_by_bytes(
    make_pool: Callable[..., Mempool], mint: Callable[..., Transaction]
) -> None:
    first, second = mint(0), mint(1)
    pool = make_pool(max_bytes=len(first.encoded) + len(second.encoded) - 1)
    pool.admit(first, 1)
    with pytest.raises(MempoolFull) as info:
        pool.admit(second, 1)
    assert info.value.code == "mempool_full"
    assert len(pool) == 1
    # Room comes back once a transaction leaves.
    pool.remove(first.tx_id)
    pool.admit(second, 1)
    assert pool.size_bytes == len(second.encoded)


# --- waiting for a nonce gap -------------------------------------------------------


def test_future_nonces_wait_until_the_gap_is_filled(
    pool: Mempool, mint: Callable[..., Transaction], alice: KeyPair
) -> None:
    later = [mint(1), mint(2)]
    for tx in later:
        pool.admit(tx, 1)
    assert len(pool) == 2
    assert pool.reap(100, 10**9) == []
    assert pool.get_pending_nonce(alice.address) == 0
    first = mint(0)
    pool.admit(first, 1)
    assert pool.reap(100, 10**9) == [first, *later]
    assert pool.get_pending_nonce(alice.address) == 3


def test_reap_takes_each_senders_run_in_nonce_order(
    pool: Mempool, mint: Callable[..., Transaction], bob: KeyPair
) -> None:
    a0, a1, a2 = mint(0), mint(1), mint(2)
    b0 = mint(0, key=bob)
    for tx in (a2, b0, a0, a1):
        pool.admit(tx, 1)
    # alice's run starts where her first transaction arrived, and is in nonce order.
    assert pool.reap(100, 10**9) == [a0, a1, a2, b0]


def test_reap_stops_at_a_gap(pool: Mempool, mint: Callable[..., Transaction], bob: KeyPair) -> None:
    a0, a2 = mint(0), mint(2)
    b0 = mint(0, key=bob)
    for tx in (a0, a2, b0):
        pool.admit(tx, 1)
    assert pool.reap(100, 10**9) == [a0, b0]


def test_reap_respects_max_txs(pool: Mempool, mint: Callable[..., Transaction]) -> None:
    txs = [mint(n) for n in range(5)]
    for tx in reversed(txs):
        pool.admit(tx, 1)
    assert pool.reap(3, 10**9) == txs[:3]
    assert pool.reap(0, 10**9) == []
    assert len(pool) == 5  # reaping does not remove


def test_reap_respects_max_bytes(pool: Mempool, mint: Callable[..., Transaction]) -> None:
    txs = [mint(n) for n in range(4)]
    for tx in txs:
        pool.admit(tx, 1)
    two = len(txs[0].encoded) + len(txs[1].encoded)
    assert pool.reap(100, two) == txs[:2]
    assert pool.reap(100, two + len(txs[2].encoded) - 1) == txs[:2]
    assert pool.reap(100, len(txs[0].encoded) - 1) == []


@given(
    order=st.permutations([("a", n) for n in range(4)] + [("b", n) for n in range(3)]),
    max_txs=st.integers(0, 8),
)
def test_reap_never_breaks_a_senders_nonce_sequence(
    order: list[tuple[str, int]],
    max_txs: int,
    make_pool: Callable[..., Mempool],
    mint: Callable[..., Transaction],
    alice: KeyPair,
    bob: KeyPair,
) -> None:
    pool = make_pool()
    keys = {"a": alice, "b": bob}
    for who, nonce in order:
        pool.admit(mint(nonce, key=keys[who]), 1)
    taken = pool.reap(max_txs, 10**9)
    assert len(taken) == min(max_txs, 7)
    assert len({tx.tx_id for tx in taken}) == len(taken)
    for key in keys.values():
        nonces = [tx.nonce for tx in taken if tx.sender == key.public_key]
        assert nonces == list(range(len(nonces)))


# --- after a block ---------------------------------------------------------------------


def test_on_block_committed_drops_committed_stale_and_expired(
    pool: Mempool,
    mint: Callable[..., Transaction],
    nonces: Nonces,
    alice: KeyPair,
    bob: KeyPair,
) -> None:
    a0, a1, a2 = mint(0), mint(1), mint(2)
    b0 = mint(0, key=bob)
    b1_expiring = mint(1, key=bob, expiry=3)
    b1_rival = mint(1, key=bob, amount=7)  # another node's bob/1, committed instead
    keep_far = mint(3)
    for tx in (a0, a1, a2, b0, b1_expiring, keep_far):
        pool.admit(tx, 1)
    # Block 1 commits a0, a1 and b0. a2 and keep_far wait; b1_expiring is still valid.
    nonces[alice.address] = 2
    nonces[bob.address] = 1
    pool.on_block_committed((a0, a1, b0), next_height=2)
    assert [tx_id in pool for tx_id in (a0.tx_id, a1.tx_id, b0.tx_id)] == [False] * 3
    assert a2.tx_id in pool and keep_far.tx_id in pool and b1_expiring.tx_id in pool
    assert pool.get_pending_nonce(alice.address) == 4
    # Block 4 commits a rival bob/1: ours is stale. Height 5 also expires it.
    nonces[bob.address] = 2
    pool.on_block_committed((b1_rival,), next_height=5)
    assert b1_expiring.tx_id not in pool
    assert len(pool) == 2
    assert pool.size_bytes == len(a2.encoded) + len(keep_far.encoded)
    assert pool.get_pending_nonce(bob.address) == 2


def test_on_block_committed_drops_expired_of_untouched_senders(
    pool: Mempool, mint: Callable[..., Transaction], bob: KeyPair
) -> None:
    expiring = mint(0, expiry=2)
    lasting = mint(0, key=bob, expiry=3)
    pool.admit(expiring, 1)
    pool.admit(lasting, 1)
    pool.on_block_committed((), next_height=3)
    assert expiring.tx_id not in pool
    assert lasting.tx_id in pool
    assert pool.size_bytes == len(lasting.encoded)


def test_on_block_committed_drops_stale_nonces(
    pool: Mempool, mint: Callable[..., Transaction], nonces: Nonces, alice: KeyPair
) -> None:
    ours = [mint(0, amount=1), mint(1, amount=1), mint(2, amount=1)]
    for tx in ours:
        pool.admit(tx, 1)
    theirs = (mint(0, amount=9), mint(1, amount=9))
    nonces[alice.address] = 2
    pool.on_block_committed(theirs, next_height=2)
    assert [tx.tx_id in pool for tx in ours] == [False, False, True]
    assert pool.reap(10, 10**9) == [ours[2]]


def test_remove_unknown_is_a_no_op(pool: Mempool, mint: Callable[..., Transaction]) -> None:
    tx = mint(0)
    pool.admit(tx, 1)
    pool.remove(mint(1).tx_id)
    assert len(pool) == 1
    pool.remove(tx.tx_id)
    pool.remove(tx.tx_id)
    assert (len(pool), pool.size_bytes) == (0, 0)


def test_get_pending_nonce(
    pool: Mempool, mint: Callable[..., Transaction], nonces: Nonces, alice: KeyPair, bob: KeyPair
) -> None:
    assert pool.get_pending_nonce(alice.address) == 0
    nonces[alice.address] = 5
    assert pool.get_pending_nonce(alice.address) == 5
    pool.admit(mint(5), 1)
    pool.admit(mint(6), 1)
    pool.admit(mint(8), 1)  # after a gap: not counted
    assert pool.get_pending_nonce(alice.address) == 7
    assert pool.get_pending_nonce(bob.address) == 0


def test_few_transactions_may_wait_beyond_a_gap(node, sign, alice) -> None:
    limit = node.mempool.limits.max_gapped_per_sender
    # Nonce 0 is never sent: everything from 1 on waits beyond the gap.
    for nonce in range(1, limit + 1):
        node.submit(
            sign(alice, nonce, "accounts", "mint", {"to": alice.address, "amount": 1}).encoded
        )
    with pytest.raises(InvalidTransaction) as refused:
        node.submit(
            sign(alice, limit + 1, "accounts", "mint", {"to": alice.address, "amount": 1}).encoded
        )
    assert refused.value.code == "nonce_gap"
    # A consecutive run is not limited by it: fill the gap, then keep going.
    node.submit(sign(alice, 0, "accounts", "mint", {"to": alice.address, "amount": 1}).encoded)
    node.submit(
        sign(alice, limit + 1, "accounts", "mint", {"to": alice.address, "amount": 1}).encoded
    )


def test_waiting_transactions_age_out(node, sign, alice) -> None:
    node.submit(sign(alice, 5, "accounts", "mint", {"to": alice.address, "amount": 1}).encoded)
    assert len(node.mempool) == 1
    node.mempool.on_block_committed(
        (), node.head.height + 1 + node.mempool.limits.max_age_blocks + 1
    )
    assert len(node.mempool) == 0


# --- batches -------------------------------------------------------------------------


def test_admit_many_admits_and_refuses_each_as_admit_would(
    pool: Mempool, mint: Callable[..., Transaction], bob: KeyPair
) -> None:
    a0, a1, b0 = mint(0), mint(1), mint(0, key=bob)
    forged = decode_transaction(with_signature(mint(2), bytes(64)))
    rival = mint(1, amount=2)  # the same nonce as a1, later in the batch
    checked: list[Transaction] = []

    def verify(txs: Sequence[Transaction]) -> list[bool]:
        checked.extend(txs)
        return [tx.is_signature_valid() for tx in txs]

    outcome = pool.admit_many([a0, a1, forged, a0, b0, rival], 1, verify)
    codes = [None if o is None else o.code for o in outcome]
    assert codes == [None, None, "invalid_signature", "duplicate", None, "nonce_taken"]
    assert pool.reap(100, 10**9) == [a0, a1, b0]
    # Signatures are checked in one call, for the transactions that passed the cheap checks.
    assert checked == [a0, a1, forged, a0, b0, rival]
    assert [o.code for o in pool.admit_many([a0], 1) if o is not None] == ["duplicate"]
    assert pool.admit_many([], 1) == []


def test_admit_many_respects_the_room_left(
    make_pool: Callable[..., Mempool], mint: Callable[..., Transaction]
) -> None:
    pool = make_pool(max_txs=2)
    outcome = pool.admit_many([mint(0), mint(1), mint(2)], 1)
    assert [type(o) for o in outcome] == [type(None), type(None), MempoolFull]
    assert len(pool) == 2


def test_a_batch_checked_in_two_halves_sees_what_was_admitted_meanwhile(
    pool: Mempool, mint: Callable[..., Transaction]
) -> None:
    a0, a1, rival = mint(0), mint(1), mint(1, amount=9)
    admission = pool.begin_admission([a0, a1], 1)
    assert admission.to_verify == [a0, a1]
    # While the signatures are checked elsewhere, another nonce 1 arrives.
    pool.admit(rival, 1)
    outcome = pool.end_admission(admission, [True, True], 1)
    assert [None if o is None else o.code for o in outcome] == [None, "nonce_taken"]
    assert pool.reap(10, 10**9) == [a0, rival]
    # An expiry is checked again against the height when the batch ends.
    late = mint(2, expiry=3)
    admission = pool.begin_admission([late], 3)
    outcome = pool.end_admission(admission, [True], 4)
    assert [o.code for o in outcome if o is not None] == ["expired"]
