"""The node end to end without HTTP: genesis, blocks, receipts, proofs, reopening, tampering."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from civicledger.chain.block import (
    Block,
    Commit,
    compute_receipts_root,
    compute_tx_root,
    decode_commit,
)
from civicledger.chain.genesis import Genesis
from civicledger.chain.merkle import EMPTY_ROOT
from civicledger.chain.proof import ReceiptProof, verify_receipt_proof
from civicledger.chain.receipt import Receipt
from civicledger.chain.transaction import Transaction
from civicledger.crypto.keys import KeyPair
from civicledger.encoding import encode
from civicledger.errors import (
    CorruptionError,
    InvalidBlock,
    InvalidProof,
    LedgerError,
    NotFound,
)
from civicledger.execution.executor import nonce_key
from civicledger.node.node import Node
from civicledger.state.smt import SparseMerkleTree

Sign = Callable[..., Transaction]
NOW_MS = 1_750_000_000_000


def db_path(node: Node) -> Path:
    return node.data_dir / "chain.db"


@pytest.fixture
def mint(sign: Sign, alice: KeyPair, bob: KeyPair) -> Callable[..., Transaction]:
    def make(nonce: int, amount: int = 1, key: KeyPair = alice, **kw: Any) -> Transaction:
        return sign(key, nonce, "accounts", "mint", {"to": bob.address, "amount": amount}, **kw)

    return make


@pytest.fixture
def mixed_block(
    node: Node, sign: Sign, alice: KeyPair, bob: KeyPair
) -> tuple[Block, list[Transaction]]:
    """Block 1 with successes and failures: mint ok, overspend, transfer, bob mint refused."""
    txs = [
        sign(alice, 0, "accounts", "mint", {"to": alice.address, "amount": 10}),
        sign(alice, 1, "accounts", "transfer", {"to": bob.address, "amount": 11}),
        sign(alice, 2, "accounts", "transfer", {"to": bob.address, "amount": 4}),
        sign(
            alice,
            3,
            "documents",
            "register",
            {"id": "d-1", "sha256": hashlib.sha256(b"d").digest(), "title": "D"},
        ),
        sign(bob, 0, "accounts", "mint", {"to": bob.address, "amount": 10}),
    ]
    for tx in txs:
        node.submit(tx.encoded)
    block = node.produce_block(NOW_MS)
    assert block is not None
    return block, txs


# --- genesis and reopening -----------------------------------------------------------


def test_genesis_is_written_once(node: Node, genesis: Genesis, validator_key: KeyPair) -> None:
    tree = SparseMerkleTree.from_items(genesis.initial_state().items())
    expected = genesis.block(tree.root()).header
    assert node.head == expected
    assert node.head.height == 0
    assert node.head.tx_root == EMPTY_ROOT == node.head.receipts_root
    assert node.store.get_meta("genesis_hash") == expected.hash
    assert node.store.get_meta("chain_id") == genesis.chain_id.encode()
    node.close()
    again = Node(node.data_dir, genesis, validator_key)
    try:
        assert again.head == expected
        assert [b.height for b in again.store.iter_blocks()] == [0]
    finally:
        again.close()


def test_genesis_state(
    make_genesis: Callable[..., Genesis],
    tmp_path: Path,
    validator_key: KeyPair,
    alice: KeyPair,
    bob: KeyPair,
) -> None:
    genesis = make_genesis(balances=((bob.address, 70), (alice.address, 30)))
    node = Node(tmp_path, genesis, validator_key)
    try:
        assert node.query("accounts", "balance", {"address": bob.address}) == 70
        assert node.query("accounts", "supply", {}) == 100
        assert node.query("accounts", "is_issuer", {"address": alice.address}) is True
        assert node.query("accounts", "is_issuer", {"address": bob.address}) is False
        assert node.get_state_value("accounts", "supply") == encode(100)
        assert node.get_state_value("accounts", "nope") is None
    finally:
        node.close()


def test_reopen_restores_head_and_state(
    node: Node,
    genesis: Genesis,
    validator_key: KeyPair,
    mint: Callable[..., Transaction],
    bob: KeyPair,
) -> None:
    for n in range(3):
        node.submit(mint(n, amount=n + 1).encoded)
        node.produce_block(NOW_MS + n)
    head, root = node.head, node.state.root()
    assert head.height == 3 and head.state_root == root
    node.close()
    again = Node(node.data_dir, genesis, validator_key)
    try:
        assert again.head == head
        assert again.state.root() == root
        assert again.query("accounts", "balance", {"address": bob.address}) == 6
        assert again.get_nonce(KeyPair.from_seed(b"a" * 32).address) == 3
        # And it builds on it.
        again.submit(mint(3).encoded)
        block = again.produce_block(NOW_MS + 10)
        assert block is not None and block.header.prev_hash == head.hash
    finally:
        again.close()


def test_a_different_genesis_is_refused(
    node: Node, make_genesis: Callable[..., Genesis], validator_key: KeyPair, bob: KeyPair
) -> None:
    node.close()
    for other in (
        make_genesis(chain_id="test-2"),
        make_genesis(time_ms=1),
        make_genesis(issuers=(bob.address,)),
        make_genesis(balances=((bob.address, 1),)),
    ):
        with pytest.raises(CorruptionError) as info:
            Node(node.data_dir, other, validator_key)
        assert "another network" in info.value.message
        assert info.value.code == "corrupted"


# --- producing blocks -------------------------------------------------------------------


def test_produce_block_with_mixed_transactions(
    node: Node,
    mixed_block: tuple[Block, list[Transaction]],
    validator_key: KeyPair,
    alice: KeyPair,
    bob: KeyPair,
) -> None:
    block, txs = mixed_block
    assert block.transactions == tuple(txs)
    header = block.header
    assert header.height == 1 and node.head == header
    assert header.prev_hash == node.get_header(0).hash
    assert header.time_ms == NOW_MS
    assert header.proposer == validator_key.address
    assert header.validator_set_hash == node.validators.hash
    assert header.state_root == node.state.root()
    receipts = node.get_receipts(1)
    assert [r.error_code for r in receipts] == [
        "",
        "insufficient_funds",
        "",
        "",
        "permission_denied",
    ]
    assert header.tx_root == compute_tx_root(txs)
    assert header.receipts_root == compute_receipts_root(receipts)
    assert len(node.mempool) == 0
    # Failed transactions bumped their senders' nonces too.
    assert node.get_nonce(alice.address) == 4
    assert node.get_nonce(bob.address) == 1
    assert node.query("accounts", "balance", {"address": bob.address}) == 4
    stored, commit = node.get_block(1)
    assert stored == block
    assert commit is not None
    commit.validate(node.chain_id, header, node.validators)


def test_block_time_strictly_increases(node: Node, mint: Callable[..., Transaction]) -> None:
    first = node.produce_block(NOW_MS)
    assert first is not None and first.transactions == ()
    assert first.header.tx_root == EMPTY_ROOT
    second = node.produce_block(NOW_MS - 5_000)  # the clock went backwards
    assert second is not None
    assert second.header.time_ms == NOW_MS + 1
    assert node.head.height == 2


def test_tx_status_pending_committed_and_unknown(
    node: Node, mint: Callable[..., Transaction]
) -> None:
    tx = mint(0)
    assert node.submit(tx.encoded) == tx.tx_id
    status = node.get_tx_status(tx.tx_id)
    assert (status.status, status.height, status.receipt) == ("pending", None, None)
    with pytest.raises(NotFound):
        node.get_receipt_proof(tx.tx_id)
    seen: list[tuple[int, tuple[Receipt, ...]]] = []
    node.on_commit.append(lambda block, receipts, _: seen.append((block.height, receipts)))
    node.produce_block(NOW_MS)
    status = node.get_tx_status(tx.tx_id)
    assert (status.status, status.height, status.index) == ("committed", 1, 0)
    assert status.transaction == tx
    assert status.receipt is not None and status.receipt.ok
    assert seen == [(1, (status.receipt,))]
    with pytest.raises(NotFound):
        node.get_tx_status(mint(1).tx_id)
    with pytest.raises(NotFound):
        node.get_header(2)
    with pytest.raises(NotFound):
        node.get_block_hash_height(bytes(32))
    assert node.get_block_hash_height(node.head.hash) == 1


def test_a_node_without_a_validator_key_does_not_produce(
    tmp_path: Path, genesis: Genesis, mint: Callable[..., Transaction]
) -> None:
    node = Node(tmp_path, genesis)
    try:
        node.submit(mint(0).encoded)
        assert not node.is_proposer()
        assert node.produce_block(NOW_MS) is None
        assert node.head.height == 0 and len(node.mempool) == 1
    finally:
        node.close()


def test_produce_block_skips_transactions_that_became_invalid(
    node: Node,
    mint: Callable[..., Transaction],
    bob: KeyPair,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for n in range(3):
        node.produce_block(NOW_MS + n)
    used = mint(0, amount=1)
    node.submit(used.encoded)
    node.produce_block(NOW_MS + 10)
    assert node.head.height == 4
    # An expired one (admitted when it was still fine).
    expired = mint(0, key=bob, expiry=4)
    node.mempool.admit(expired, next_height=4)
    # A replay of a nonce already used, admitted while the mempool saw an older state.
    replay = mint(0, amount=2)
    with monkeypatch.context() as m:
        m.setattr(node.mempool, "_get_nonce", lambda address: 0)
        node.mempool.admit(replay, next_height=5)
    good = mint(1)
    node.submit(good.encoded)
    assert len(node.mempool) == 3
    block = node.produce_block(NOW_MS + 20)
    assert block is not None
    assert block.transactions == (good,)
    assert len(node.mempool) == 0
    for tx in (expired, replay):
        with pytest.raises(NotFound):
            node.get_tx_status(tx.tx_id)


# --- receipt proofs -------------------------------------------------------------------


def test_receipt_proofs_verify(
    node: Node, mixed_block: tuple[Block, list[Transaction]], genesis: Genesis
) -> None:
    block, _ = mixed_block
    for index, tx in enumerate(block.transactions):
        proof = node.get_receipt_proof(tx.tx_id)
        assert proof.tx_proof.index == index
        verify_receipt_proof(proof)
        verify_receipt_proof(proof, trusted_validators=genesis.validators)
        saved = json.loads(json.dumps(proof.to_json()))
        assert saved["status"] == ("ok" if proof.receipt.ok else "failed")
        assert saved["tx_id"] == tx.tx_id.hex() and saved["height"] == 1
        verify_receipt_proof(ReceiptProof.from_json(saved))


def test_receipt_proof_with_an_untrusted_validator_set(
    node: Node,
    mixed_block: tuple[Block, list[Transaction]],
    make_genesis: Callable[..., Genesis],
    bob: KeyPair,
) -> None:
    proof = node.get_receipt_proof(mixed_block[1][0].tx_id)
    other = make_genesis(validators=[bob]).validators
    with pytest.raises(InvalidProof):
        verify_receipt_proof(proof, trusted_validators=other)


PROOF_HEX_FIELDS = [
    "transaction",
    "receipt",
    "tx_proof",
    "receipt_proof",
    "header",
    "commit",
    "validators",
]


@pytest.mark.parametrize("field", PROOF_HEX_FIELDS)
def test_every_altered_byte_of_a_proof_is_caught(
    node: Node, mixed_block: tuple[Block, list[Transaction]], field: str
) -> None:
    saved = node.get_receipt_proof(mixed_block[1][2].tx_id).to_json()
    raw = bytes.fromhex(saved[field])
    assert raw
    accepted = []
    for i in range(len(raw)):
        for mask in (0x01, 0x80):
            altered = bytearray(raw)
            altered[i] ^= mask
            try:
                verify_receipt_proof(ReceiptProof.from_json({**saved, field: altered.hex()}))
            except LedgerError:
                continue
            accepted.append((i, mask))
    assert accepted == []


@pytest.mark.parametrize("field", PROOF_HEX_FIELDS)
def test_a_proof_with_a_missing_or_non_hex_field_is_refused(
    node: Node, mixed_block: tuple[Block, list[Transaction]], field: str
) -> None:
    saved = node.get_receipt_proof(mixed_block[1][0].tx_id).to_json()
    for broken in (
        {k: v for k, v in saved.items() if k != field},
        {**saved, field: "zz"},
        {**saved, field: 5},
        {**saved, field: saved[field][:-2]},
    ):
        with pytest.raises(LedgerError):
            verify_receipt_proof(ReceiptProof.from_json(broken))
    with pytest.raises(LedgerError):
        ReceiptProof.from_json({**saved, "format": "something/else"})


@pytest.mark.parametrize("field", ["tx_id", "height", "status"])
def test_the_summary_fields_of_a_saved_proof_are_checked(
    node: Node, mixed_block: tuple[Block, list[Transaction]], field: str
) -> None:
    saved = node.get_receipt_proof(mixed_block[1][1].tx_id).to_json()  # the overspend: failed
    lies = {"tx_id": mixed_block[1][0].tx_id.hex(), "height": 7, "status": "ok"}
    assert saved[field] != lies[field]
    with pytest.raises(LedgerError):
        verify_receipt_proof(ReceiptProof.from_json({**saved, field: lies[field]}))


# --- tampering with the database --------------------------------------------------------


@pytest.fixture
def closed_chain(
    node: Node, genesis: Genesis, mint: Callable[..., Transaction]
) -> Iterator[Callable[[], Node]]:
    """Three blocks of two transactions each, then the node closed; yields a reopener."""
    for h in range(3):
        for k in range(2):
            node.submit(mint(2 * h + k, amount=h + 1).encoded)
        node.produce_block(NOW_MS + h)
    assert node.head.height == 3
    node.close()
    opened: list[Node] = []

    def reopen() -> Node:
        n = Node(node.data_dir, genesis, node.validator_key)
        opened.append(n)
        return n

    yield reopen
    for n in opened:
        n.close()


class Db:
    """Direct access to the node's SQLite file (the node must be closed)."""

    def __init__(self, path: Path) -> None:
        self.con = sqlite3.connect(path, isolation_level=None)
        self.con.execute("PRAGMA synchronous=OFF")  # speed: no fsync per tampering

    def one(self, sql: str, *params: object) -> Any:
        row = self.con.execute(sql, params).fetchone()
        assert row is not None
        return row[0]

    def run(self, sql: str, *params: object) -> None:
        self.con.execute(sql, params)

    def close(self) -> None:
        self.con.close()


@pytest.fixture
def db(closed_chain: Callable[[], Node], node: Node) -> Iterator[Db]:
    d = Db(db_path(node))
    yield d
    d.close()


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[index] ^= mask
    return bytes(out)


def assert_refused(reopen: Callable[[], Node], *fragments: str) -> CorruptionError:
    with pytest.raises(CorruptionError) as info:
        reopen()
    for fragment in fragments:
        assert fragment in info.value.message
    return info.value


def test_untouched_database_reopens(closed_chain: Callable[[], Node]) -> None:
    assert closed_chain().head.height == 3


@pytest.mark.parametrize("height", [1, 2, 3])
def test_every_altered_byte_of_a_stored_transaction_is_caught(
    db: Db, closed_chain: Callable[[], Node], height: int
) -> None:
    sql = "SELECT raw FROM txs WHERE height = ? AND idx = 1"
    raw = db.one(sql, height)
    for i in range(len(raw)):
        db.run("UPDATE txs SET raw = ? WHERE height = ? AND idx = 1", flip(raw, i), height)
        assert_refused(closed_chain, f"block {height}")
    db.run("UPDATE txs SET raw = ? WHERE height = ? AND idx = 1", raw, height)
    assert closed_chain().head.height == 3


@pytest.mark.parametrize("height", [0, 1, 2, 3])
def test_every_altered_byte_of_a_stored_header_is_caught(
    db: Db, closed_chain: Callable[[], Node], height: int
) -> None:
    header = db.one("SELECT header FROM blocks WHERE height = ?", height)
    for i in range(len(header)):
        db.run("UPDATE blocks SET header = ? WHERE height = ?", flip(header, i), height)
        assert_refused(closed_chain, f"block {height}")
    db.run("UPDATE blocks SET header = ? WHERE height = ?", header, height)
    assert closed_chain().head.height == 3


def test_an_altered_commit_is_caught(db: Db, closed_chain: Callable[[], Node]) -> None:
    commit = db.one("SELECT commit_ FROM blocks WHERE height = 2")
    for i in (0, 5, len(commit) // 2, len(commit) - 1):
        db.run("UPDATE blocks SET commit_ = ? WHERE height = 2", flip(commit, i))
        assert_refused(closed_chain, "block 2")
    db.run("UPDATE blocks SET commit_ = ? WHERE height = 2", commit)
    assert decode_commit(commit).height == 2


def test_an_altered_receipt_is_caught(db: Db, closed_chain: Callable[[], Node]) -> None:
    receipt = db.one("SELECT receipt FROM txs WHERE height = 2 AND idx = 0")
    # Bytes inside the receipt's tx id: still decodable, but not committed to.
    for i in (4, 20, 35):
        db.run("UPDATE txs SET receipt = ? WHERE height = 2 AND idx = 0", flip(receipt, i))
        assert_refused(closed_chain, "block 2", "receipts root")


def test_every_altered_byte_of_a_stored_receipt_is_caught(
    db: Db, closed_chain: Callable[[], Node]
) -> None:
    receipt = db.one("SELECT receipt FROM txs WHERE height = 2 AND idx = 0")
    for i in range(len(receipt)):
        db.run("UPDATE txs SET receipt = ? WHERE height = 2 AND idx = 0", flip(receipt, i))
        assert_refused(closed_chain, "block 2")


def test_a_deleted_transaction_is_caught(db: Db, closed_chain: Callable[[], Node]) -> None:
    db.run("DELETE FROM txs WHERE height = 1 AND idx = 1")
    assert_refused(closed_chain, "block 1", "tx root")


def test_a_deleted_block_is_caught(db: Db, closed_chain: Callable[[], Node]) -> None:
    db.run("DELETE FROM blocks WHERE height = 2")
    assert_refused(closed_chain, "block 3")


def test_an_altered_state_value_is_caught(db: Db, closed_chain: Callable[[], Node]) -> None:
    key = b"accounts/supply"
    value = db.one("SELECT value FROM state WHERE key = ?", key)
    db.run("UPDATE state SET value = ? WHERE key = ?", flip(value, len(value) - 1), key)
    assert_refused(closed_chain, "block 3", "state root")


def test_a_deleted_state_row_is_caught(
    db: Db, closed_chain: Callable[[], Node], alice: KeyPair
) -> None:
    db.run("DELETE FROM state WHERE key = ?", nonce_key(alice.address))
    assert_refused(closed_chain, "block 3", "state root")


def test_an_added_state_row_is_caught(db: Db, closed_chain: Callable[[], Node]) -> None:
    db.run("INSERT INTO state (key, value) VALUES (?, ?)", b"accounts/supply2", encode(1))
    assert_refused(closed_chain, "block 3", "state root")


def test_an_altered_genesis_hash_is_caught(db: Db, closed_chain: Callable[[], Node]) -> None:
    db.run("UPDATE meta SET value = ? WHERE key = 'genesis_hash'", bytes(32))
    assert_refused(closed_chain, "another network")


def test_a_synced_block_is_checked_once_and_refused_if_forged(
    tmp_path: Path,
    genesis: Genesis,
    node: Node,
    mixed_block: tuple[Block, list[Transaction]],
    validator_key: KeyPair,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A follower verifies each transaction of a synced block once (none was in its
    mempool), through its verifier, and the block's certificate once."""
    block, txs = mixed_block
    stored, commit = node.get_block(1)
    assert commit is not None
    checked: list[Transaction] = []

    def verify(batch: Sequence[Transaction]) -> list[bool]:
        checked.extend(batch)
        return [tx.is_signature_valid() for tx in batch]

    certificates = 0
    original = Commit.validate

    def count(self: Commit, *args: Any) -> None:
        nonlocal certificates
        certificates += 1
        original(self, *args)

    monkeypatch.setattr(Commit, "validate", count)
    follower = Node(tmp_path / "follower", genesis, verify=verify)
    try:
        follower.apply_synced_block(stored, commit)
        assert follower.head == block.header
        assert checked == txs and certificates == 1
    finally:
        follower.close()
    # A block certified with a transaction whose signature is another's is refused.
    forged_tx = dataclasses.replace(
        txs[0], signature=txs[1].signature, _encoded=b"", _tx_id=b"", _sender_address=b""
    )
    forged_txs = (forged_tx, *txs[1:])
    header = dataclasses.replace(block.header, tx_root=compute_tx_root(forged_txs))
    forged = Block(header, forged_txs)
    certificate = Commit.sign(node.chain_id, 1, 0, forged.hash, [validator_key])
    other = Node(tmp_path / "other", genesis, verify=verify)
    try:
        with pytest.raises(InvalidBlock, match="not signed"):
            other.apply_synced_block(forged, certificate)
        assert other.head.height == 0
    finally:
        other.close()


def test_a_damaged_page_is_refused_with_a_message_not_a_traceback(
    tmp_path: Path, genesis: Genesis, validator_key: KeyPair, sign: Any, alice: KeyPair
) -> None:
    node = Node(tmp_path / "n", genesis, validator_key)
    for nonce in range(20):
        args = {"to": alice.address, "amount": 1}
        node.submit(sign(alice, nonce, "accounts", "mint", args).encoded)
        node.produce_block(node.head.time_ms + 1_000)
    node.store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    node.close()
    db = tmp_path / "n" / "chain.db"
    data = bytearray(db.read_bytes())
    page = 4096
    for start in range(2 * page, len(data) - page, page):
        data[start + 100 : start + 400] = bytes(range(256)) + bytes(44)
    db.write_bytes(bytes(data))
    with pytest.raises(CorruptionError, match=r"chain\.db"):
        Node(tmp_path / "n", genesis, validator_key)


def test_after_a_commit_reads_see_the_new_head_state(
    node: Node, mint: Callable[..., Transaction], alice: KeyPair
) -> None:
    """The mempool and the commit callbacks read the state of the block just committed
    (the nonces it used), and the sender's next transaction goes into the next block."""
    seen: list[int] = []
    node.on_commit.append(
        lambda block, receipts, scheduled: seen.append(node.get_nonce(alice.address))
    )
    for nonce in range(3):
        node.submit(mint(nonce).encoded)
        block = node.produce_block(NOW_MS + nonce)
        assert block is not None and len(block.transactions) == 1
        assert node.get_nonce(alice.address) == nonce + 1
        assert node.mempool.get_pending_nonce(alice.address) == nonce + 1
    assert seen == [1, 2, 3]
    with pytest.raises(LedgerError, match="already used"):
        node.submit(mint(1).encoded)


def test_a_failing_commit_listener_neither_fails_the_commit_nor_silences_the_others(
    node: Node, mint: Callable[..., Transaction], caplog: pytest.LogCaptureFixture
) -> None:
    heard: list[int] = []

    def broken(block: Block, receipts: object, scheduled: object) -> None:
        raise RuntimeError("listener bug")

    node.on_commit.append(broken)
    node.on_commit.append(lambda block, receipts, scheduled: heard.append(block.header.height))
    node.submit(mint(0).encoded)
    block = node.produce_block(NOW_MS)
    assert block is not None and node.head.height == block.header.height == 1
    assert heard == [1]
    assert "commit listener failed on block 1" in caplog.text
