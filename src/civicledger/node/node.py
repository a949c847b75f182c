"""A node: the chain, the state, the mempool and (if it validates) block production.

This is the stateful shell around the pure core. It owns the block store and the state
tree, admits transactions, produces and commits blocks, and answers reads. It does no
networking and reads no clock itself: the service (``node.service``) passes the time in.

On open it checks what it is about to serve and build on: every stored block's hash
links, transactions root, receipts root and commit certificate, and that the state it
loaded hashes to the head's state root. A node whose copy fails these refuses to start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from civicledger.chain.block import (
    Block,
    Commit,
    Header,
    ValidatorSet,
    compute_receipts_root,
    compute_tx_root,
    decode_commit,
    decode_header,
)
from civicledger.chain.genesis import Genesis
from civicledger.chain.merkle import compute_inclusion_proof
from civicledger.chain.proof import ReceiptProof
from civicledger.chain.receipt import Receipt, decode_receipt
from civicledger.chain.transaction import Transaction, decode_transaction
from civicledger.contracts.registry import ContractRegistry, default_registry
from civicledger.crypto.hashing import sha256
from civicledger.crypto.keys import KeyPair
from civicledger.encoding import Value
from civicledger.errors import CorruptionError, InvalidBlock, LedgerError, NotFound
from civicledger.execution.executor import (
    BlockEnv,
    execute_transactions,
    get_nonce,
    run_query,
)
from civicledger.mempool.pool import Mempool, MempoolLimits
from civicledger.state.smt import SparseMerkleTree
from civicledger.storage.sqlite import BlockStore
from civicledger.types import Address, Hash32

__all__ = ["Node", "TxStatus"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TxStatus:
    tx_id: Hash32
    #: ``"pending"`` (in the mempool) or ``"committed"``.
    status: str
    transaction: Transaction
    height: int | None = None
    index: int | None = None
    receipt: Receipt | None = None


class Node:
    def __init__(
        self,
        data_dir: Path,
        genesis: Genesis,
        validator_key: KeyPair | None = None,
        *,
        registry: ContractRegistry | None = None,
        mempool_limits: MempoolLimits | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.validator_key = validator_key
        self.validators: ValidatorSet = genesis.validators
        self.registry = registry or default_registry()
        self.store = BlockStore(data_dir / "chain.db")
        self.state = SparseMerkleTree()
        self.mempool = Mempool(
            self.chain_id, self.registry, self.get_nonce, mempool_limits or MempoolLimits()
        )
        self.head: Header
        #: Called with each committed block and its receipts (events, waiters).
        self.on_commit: list[Callable[[Block, tuple[Receipt, ...]], None]] = []
        try:
            self._open()
        except BaseException:
            self.store.close()
            raise

    # -- opening -----------------------------------------------------------------

    def _open(self) -> None:
        genesis_block = self._genesis_block()
        stored_hash = self.store.get_meta("genesis_hash")
        if stored_hash is None:
            self._write_genesis(genesis_block)
        elif stored_hash != genesis_block.hash:
            raise CorruptionError(
                f"{self.store.path} belongs to another network (genesis {stored_hash.hex()}, "
                f"this genesis file gives {genesis_block.hash.hex()})"
            )
        self.state = SparseMerkleTree.from_items(self.store.iter_state())
        try:
            self.head = self.check_stored_chain()
        except CorruptionError as exc:
            raise CorruptionError(
                f"refusing to start: {self.store.path} is damaged: {exc.message}. "
                "Run 'civic verify' for details"
            ) from None
        # The state we loaded is the state the head block committed to.
        if self.state.root() != self.head.state_root:
            raise CorruptionError(
                f"stored state does not match the state root of block {self.head.height}; "
                "the database was altered or damaged. Run 'civic verify' for details"
            )
        log.info("opened chain %s at height %d", self.chain_id, self.head.height)

    def _genesis_block(self) -> Block:
        tree = SparseMerkleTree.from_items(self.genesis.initial_state().items())
        return self.genesis.block(tree.root())

    def _write_genesis(self, block: Block) -> None:
        self.store.save_block(
            height=0,
            block_hash=block.hash,
            header=block.header.encoded,
            commit=b"",
            txs=[],
            changes=dict(self.genesis.initial_state()),
        )
        self.store.set_meta("chain_id", self.chain_id.encode())
        self.store.set_meta("genesis_hash", block.hash)

    def check_stored_chain(self) -> Header:
        """Check links, roots and commits of every stored block; return the head header."""
        previous: Header | None = None
        for stored in self.store.iter_blocks():
            try:
                header = decode_header(stored.header)
            except LedgerError as exc:
                raise CorruptionError(f"block {stored.height}: header unreadable: {exc}") from None
            self._check_block_row(stored.height, stored.hash, header, previous)
            if stored.height > 0:
                self._check_body(header, stored.commit)
            previous = header
        if previous is None:
            raise CorruptionError(f"{self.store.path} holds no blocks, not even genesis")
        return previous

    def _check_block_row(
        self, height: int, block_hash: bytes, header: Header, previous: Header | None
    ) -> None:
        # The header hashes to the hash it is stored under, at its own height.
        if header.hash != block_hash or header.height != height:
            raise CorruptionError(f"block {height}: header does not match its stored hash")
        # It links to the block before, on this chain, later in time.
        expected_prev = previous.hash if previous else bytes(32)
        if header.prev_hash != expected_prev:
            raise CorruptionError(f"block {height}: does not link to block {height - 1}")
        if header.chain_id != self.chain_id:
            raise CorruptionError(f"block {height}: belongs to chain {header.chain_id!r}")
        if previous is not None and header.time_ms <= previous.time_ms:
            raise CorruptionError(f"block {height}: time does not increase")

    def _check_body(self, header: Header, raw_commit: bytes) -> None:
        height = header.height
        rows = self.store.get_block_txs(height)
        txs = []
        for row in rows:
            # Each transaction is stored under its own hash.
            if sha256(row.raw) != row.tx_id:
                raise CorruptionError(f"block {height}: transaction {row.index} was altered")
            try:
                txs.append(decode_transaction(row.raw))
            except LedgerError as exc:
                raise CorruptionError(
                    f"block {height}: transaction {row.index} unreadable: {exc.message}"
                ) from None
        # The transactions and receipts are the ones the header commits to.
        if compute_tx_root(txs) != header.tx_root:
            raise CorruptionError(f"block {height}: transactions do not match the tx root")
        receipts = []
        for row in rows:
            try:
                receipts.append(decode_receipt(row.receipt))
            except LedgerError as exc:
                raise CorruptionError(
                    f"block {height}: receipt {row.index} unreadable: {exc.message}"
                ) from None
        if compute_receipts_root(receipts) != header.receipts_root:
            raise CorruptionError(f"block {height}: receipts do not match the receipts root")
        # The block was finalised by its validators.
        try:
            decode_commit(raw_commit).validate(self.chain_id, header, self.validators)
        except LedgerError as exc:
            raise CorruptionError(f"block {height}: bad commit: {exc}") from None

    def close(self) -> None:
        self.store.close()

    # -- transactions ------------------------------------------------------------

    def get_nonce(self, address: Address) -> int:
        return get_nonce(self.state, address)

    def submit(self, raw: bytes) -> Hash32:
        """Admit a transaction to the mempool; raise a precise ``LedgerError`` if refused."""
        tx = self.mempool.admit_raw(raw, self.head.height + 1)
        tx_id = tx.tx_id
        return tx_id

    # -- blocks ------------------------------------------------------------------

    def is_proposer(self) -> bool:
        key = self.validator_key
        if key is None:
            return False
        return self.validators.compute_proposer(self.head.height + 1).public_key == key.public_key

    def produce_block(self, now_ms: int) -> Block | None:
        """Build, sign, store and apply the next block from the mempool (single validator)."""
        key = self.validator_key
        if key is None or not self.is_proposer():
            return None
        params = self.genesis.params
        candidates = self.mempool.reap(params.max_block_txs, params.max_block_bytes)
        height = self.head.height + 1
        env = BlockEnv(self.chain_id, height, max(now_ms, self.head.time_ms + 1))
        result = execute_transactions(self.registry, self.state, env, candidates, skip_invalid=True)
        for tx, reason in result.skipped:
            log.info("dropping %s from the mempool: %s", tx.tx_id.hex(), reason)
            self.mempool.remove(tx.tx_id)
        self.state.update(result.changes)
        state_root = self.state.root()
        header = Header(
            chain_id=self.chain_id,
            height=height,
            prev_hash=self.head.hash,
            time_ms=env.time_ms,
            proposer=key.address,
            tx_root=compute_tx_root(result.transactions),
            state_root=state_root,
            receipts_root=compute_receipts_root(result.receipts),
            validator_set_hash=self.validators.hash,
        )
        block = Block(header, result.transactions)
        commit = Commit.sign(self.chain_id, height, 0, header.hash, [key])
        try:
            self._save(block, commit, result.receipts, result.changes)
        except BaseException:
            # Undo the in-memory state change: the block was not stored.
            self.state = SparseMerkleTree.from_items(self.store.iter_state())
            raise
        return block

    def _save(
        self,
        block: Block,
        commit: Commit,
        receipts: tuple[Receipt, ...],
        changes: dict[bytes, bytes | None],
    ) -> None:
        header = block.header
        self.store.save_block(
            height=header.height,
            block_hash=header.hash,
            header=header.encoded,
            commit=commit.encoded,
            txs=[
                (tx.tx_id, tx.encoded, rc.encoded)
                for tx, rc in zip(block.transactions, receipts, strict=True)
            ],
            changes=changes,
        )
        self.head = header
        self.mempool.on_block_committed(block.transactions, header.height + 1)
        for callback in self.on_commit:
            callback(block, receipts)

    # -- reads -------------------------------------------------------------------

    def get_header(self, height: int) -> Header:
        stored = self.store.get_block(height)
        if stored is None:
            raise NotFound(f"no block at height {height}; the head is {self.head.height}")
        header = decode_header(stored.header)
        if header.hash != stored.hash:
            raise CorruptionError(f"block {height} is damaged; refusing to serve it")
        return header

    def get_block_hash_height(self, block_hash: bytes) -> int:
        stored = self.store.get_block_by_hash(block_hash)
        if stored is None:
            raise NotFound(f"no block with hash {block_hash.hex()}")
        return stored.height

    def get_block(self, height: int) -> tuple[Block, Commit | None]:
        header = self.get_header(height)
        stored = self.store.get_block(height)
        assert stored is not None
        rows = self.store.get_block_txs(height)
        txs = tuple(self._checked_tx(row.raw, row.tx_id) for row in rows)
        if compute_tx_root(txs) != header.tx_root:
            raise CorruptionError(f"block {height} is damaged; refusing to serve it")
        commit = decode_commit(stored.commit) if stored.commit else None
        return Block(header, txs), commit

    def _checked_tx(self, raw: bytes, tx_id: bytes) -> Transaction:
        if sha256(raw) != tx_id:
            raise CorruptionError(f"transaction {tx_id.hex()} is damaged; refusing to serve it")
        return decode_transaction(raw)

    def get_receipts(self, height: int) -> list[Receipt]:
        return [decode_receipt(row.receipt) for row in self.store.get_block_txs(height)]

    def get_tx_status(self, tx_id: Hash32) -> TxStatus:
        pending = self.mempool.get(tx_id)
        if pending is not None:
            return TxStatus(tx_id, "pending", pending)
        row = self.store.get_tx(tx_id)
        if row is None:
            raise NotFound(f"no transaction {tx_id.hex()} (neither pending nor committed)")
        tx = self._checked_tx(row.raw, row.tx_id)
        receipt = decode_receipt(row.receipt)
        return TxStatus(tx_id, "committed", tx, row.height, row.index, receipt)

    def get_receipt_proof(self, tx_id: Hash32) -> ReceiptProof:
        status = self.get_tx_status(tx_id)
        if status.status != "committed" or status.height is None or status.index is None:
            raise NotFound(f"transaction {tx_id.hex()} is not committed yet")
        block, commit = self.get_block(status.height)
        if commit is None:
            raise InvalidBlock(f"block {status.height} has no commit")
        receipts = self.get_receipts(status.height)
        index = status.index
        receipt = receipts[index]
        return ReceiptProof(
            transaction=block.transactions[index],
            receipt=receipt,
            tx_proof=compute_inclusion_proof([tx.encoded for tx in block.transactions], index),
            receipt_proof=compute_inclusion_proof([r.encoded for r in receipts], index),
            header=block.header,
            commit=commit,
            validators=self.validators,
        )

    def query(self, contract: str, method: str, args: dict[str, Value]) -> Value:
        return run_query(self.registry, self.state, self.head.height, contract, method, args)

    def get_state_value(self, contract: str, key: str) -> bytes | None:
        return self.state.get(f"{contract}/{key}".encode())
