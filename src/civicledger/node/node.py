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
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from civicledger.chain.handoff import MAX_HANDOFFS, Handoff
from civicledger.chain.merkle import compute_inclusion_proof, compute_root
from civicledger.chain.proof import ReceiptProof
from civicledger.chain.receipt import Receipt, decode_receipt
from civicledger.chain.transaction import Transaction, decode_transaction, make_transaction
from civicledger.consensus.bft.messages import SignedProposal, Vote
from civicledger.contracts.registry import ContractRegistry, default_registry
from civicledger.contracts.schedule import DUE_PREFIX, ScheduledCall, id_key
from civicledger.contracts.system.evidence import PROPOSAL, evidence_key
from civicledger.crypto.hashing import sha256
from civicledger.crypto.keys import KeyPair
from civicledger.encoding import Value, decode, encode
from civicledger.errors import (
    CorruptionError,
    InvalidBlock,
    InvalidTransaction,
    LedgerError,
    NotFound,
)
from civicledger.execution.executor import (
    BlockEnv,
    ExecutionResult,
    execute_transactions,
    get_nonce,
    run_query,
)
from civicledger.mempool.pool import Admission, Mempool, MempoolLimits, verify_each
from civicledger.node.signer_state import SignerState
from civicledger.state.bundle import StateProofBundle, contract_state_key
from civicledger.state.ordered import StateTree
from civicledger.state.overlay import KeyIndex, Layer, Meter, StateReader, merged_scan
from civicledger.state.smt import StateProof
from civicledger.state.system import VALIDATORS_KEY, get_validator_set
from civicledger.storage.sqlite import BlockStore
from civicledger.types import Address, Hash32

__all__ = ["Node", "RawAdmission", "TxStatus"]

log = logging.getLogger(__name__)

#: Most equivocations one node reports per run (each is a transaction of its own).
MAX_EVIDENCE_SENT = 10_000


#: Recent heights whose state stays provable, by default.
DEFAULT_STATE_HISTORY = 1_000
#: Keys a historical state proof may have to undo (bounds the work of one request).
MAX_UNDO_PER_PROOF = 20_000
#: Undone keys per second that proofs at past heights may use on average (a burst may use
#: ``MAX_UNDO_PER_PROOF``): the tree is rebuilt on the event loop that runs consensus.
UNDO_BUDGET_PER_S = 10_000
#: Committed nonces remembered between two commits, at most.
MAX_CACHED_NONCES = 100_000
#: The newest blocks whose ids ``get_block_ids`` answers from memory.
RECENT_BLOCK_IDS = 16


@dataclass(slots=True)
class _Candidate:
    """A block executed and applied to the state tree but not yet committed."""

    block_hash: Hash32
    result: ExecutionResult
    #: What restores the state tree: key -> previous value (None: absent).
    inverse: dict[bytes, bytes | None]
    #: The keys of ``inverse`` in order, for scans of the committed state.
    index: KeyIndex = field(default_factory=KeyIndex)


class _CommittedView:
    """Reads the head's state: a key the candidate changed reads its previous value."""

    __slots__ = ("_node",)

    def __init__(self, node: Node) -> None:
        self._node = node

    def get(self, key: bytes) -> bytes | None:
        candidate = self._node._candidate
        if candidate is not None and key in candidate.inverse:
            return candidate.inverse[key]
        return self._node.state.get(key)

    def get_layers(self) -> tuple[list[Layer], StateReader]:
        candidate = self._node._candidate
        if candidate is None:
            return [], self._node.state
        return [(candidate.inverse, candidate.index.get(candidate.inverse))], self._node.state

    def scan(
        self, prefix: bytes, after: bytes, limit: int, meter: Meter | None = None
    ) -> list[tuple[bytes, bytes]]:
        layers, base = self.get_layers()
        return merged_scan(layers, base, prefix, after, limit, meter)


def _awaitable(
    verify: Callable[[Sequence[Transaction]], list[bool]],
) -> Callable[[Sequence[Transaction]], Awaitable[list[bool]]]:
    async def verify_async(txs: Sequence[Transaction]) -> list[bool]:
        return verify(txs)

    return verify_async


@dataclass(frozen=True, slots=True)
class RawAdmission:
    """Encoded transactions between ``Node.begin_admission`` and ``Node.end_admission``."""

    count: int
    #: Position -> why those bytes are no transaction.
    undecodable: dict[int, LedgerError]
    #: The decoded ones, in order.
    admission: Admission

    @property
    def to_verify(self) -> list[Transaction]:
        return self.admission.to_verify


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
        state_history: int = DEFAULT_STATE_HISTORY,
        verify: Callable[[Sequence[Transaction]], list[bool]] = verify_each,
        verify_async: Callable[[Sequence[Transaction]], Awaitable[list[bool]]] | None = None,
    ) -> None:
        self.data_dir = data_dir
        #: Checks the signatures of many transactions at once (e.g. on every core).
        self.verify = verify
        #: The same, awaited: the event loop goes on meanwhile (``begin_admission``).
        self.verify_async = verify_async or _awaitable(verify)
        #: How many recent heights' state stays provable (``get_state_proof(height=...)``).
        self.state_history = state_history
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.validator_key = validator_key
        self._validators: ValidatorSet | None = None
        self._candidate: _Candidate | None = None
        self._evidence_sent: set[str] = set()
        self.registry = registry or default_registry()
        self.store = BlockStore(data_dir / "chain.db")
        self._undo_budget = float(MAX_UNDO_PER_PROOF)
        self._undo_budget_at = time.monotonic()
        #: The validator's last-signature record (``node/signer_state.py``).
        self.signer_state = SignerState(data_dir)
        self.state = StateTree()
        #: Committed nonces read since the head last changed (admission asks for a
        #: sender's nonce for every transaction; the state answers it the same until the
        #: next commit).
        self._nonces: dict[Address, int] = {}
        self._nonces_head: Header | None = None
        #: The last blocks committed here, as ``get_block_ids`` answers (block watchers ask
        #: for the newest blocks, just written and checked).
        self._recent_ids: dict[int, tuple[Header, Commit | None, list[Hash32]]] = {}
        self.mempool = Mempool(
            self.chain_id,
            self.registry,
            self.get_nonce,
            mempool_limits or MempoolLimits(),
            state=lambda: self.committed,
        )
        self.head: Header
        #: Called with each committed block, its transactions' receipts and its scheduled
        #: calls' receipts (events, waiters).
        self.on_commit: list[Callable[[Block, tuple[Receipt, ...], tuple[Receipt, ...]], None]] = []
        #: Called with each transaction admitted to the mempool (gossip).
        self.on_admitted: list[Callable[[bytes], None]] = []
        try:
            self._open()
        except BaseException:
            self.store.close()
            raise

    @property
    def validators(self) -> ValidatorSet:
        """The validator set that must sign the next block (read from committed state)."""
        if self._validators is None:
            self._validators = get_validator_set(self.committed)
        return self._validators

    @property
    def committed(self) -> StateReader:
        """The state as of the head block, whether or not a candidate is applied."""
        return _CommittedView(self)

    def get_validator_set(self, set_hash: bytes) -> ValidatorSet:
        """A validator set named by some header, from the store."""
        raw = self.store.get_validator_set(set_hash)
        if raw is None:
            raise CorruptionError(f"validator set {set_hash.hex()} is not stored")
        validators = ValidatorSet.from_value(decode(raw))
        if validators.hash != set_hash:
            raise CorruptionError(f"stored validator set {set_hash.hex()} was altered")
        return validators

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
        # Databases of earlier versions kept the last-signature record inside: move it out.
        legacy = self.store.get_meta("last_signed")
        if legacy is not None:
            if self.signer_state.load() is None:
                self.signer_state.save(legacy)
            self.store.delete_meta("last_signed")
        self.state = StateTree.from_items(self.store.iter_state())
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
        tree = StateTree.from_items(self.genesis.initial_state().items())
        return self.genesis.block(tree.root())

    def _write_genesis(self, block: Block) -> None:
        self.store.save_block(
            height=0,
            block_hash=block.hash,
            header=block.header.encoded,
            commit=b"",
            txs=[],
            changes=dict(self.genesis.initial_state()),
            validator_set=(
                self.genesis.validators.hash,
                encode(self.genesis.validators.to_value()),
            ),
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
        raw_receipts = [row.receipt for row in rows] + self.store.get_scheduled_receipts(height)
        for index, raw in enumerate(raw_receipts):
            try:
                receipts.append(decode_receipt(raw))
            except LedgerError as exc:
                raise CorruptionError(
                    f"block {height}: receipt {index} unreadable: {exc.message}"
                ) from None
        if compute_receipts_root(receipts) != header.receipts_root:
            raise CorruptionError(f"block {height}: receipts do not match the receipts root")
        # The block was finalised by the validators its header names.
        try:
            validators = self.get_validator_set(header.validator_set_hash)
            decode_commit(raw_commit).validate(self.chain_id, header, validators)
        except LedgerError as exc:
            raise CorruptionError(f"block {height}: bad commit: {exc}") from None

    def close(self) -> None:
        self.store.close()

    # -- transactions ------------------------------------------------------------

    def get_nonce(self, address: Address) -> int:
        """The sender's next nonce in the committed state."""
        if self._nonces_head is not self.head or len(self._nonces) >= MAX_CACHED_NONCES:
            self._nonces.clear()
            self._nonces_head = self.head
        nonce = self._nonces.get(address)
        if nonce is None:
            nonce = self._nonces[address] = get_nonce(self.committed, address)
        return nonce

    def submit(self, raw: bytes) -> Hash32:
        """Admit a transaction to the mempool; raise a precise ``LedgerError`` if refused."""
        tx = self.mempool.admit_raw(raw, self.head.height + 1)
        for callback in self.on_admitted:
            callback(tx.encoded)
        return tx.tx_id

    def submit_many(self, raws: Sequence[bytes]) -> list[Hash32 | LedgerError]:
        """Admit many transactions, their signatures checked together; for each, its id
        if admitted or the reason it was refused."""
        batch = self.begin_admission(raws)
        return self.end_admission(batch, self.verify(batch.to_verify))

    def admit_gossiped(self, raw: bytes) -> None:
        """Admit a transaction a peer passed on (not passed on again: every node has a
        link to every other, and the sender broadcast it to all)."""
        self.mempool.admit_raw(raw, self.head.height + 1)

    def begin_admission(self, raws: Sequence[bytes]) -> RawAdmission:
        """Decode and run the cheap checks; the signatures of ``to_verify`` may then be
        checked elsewhere (on other threads) before ``end_admission``."""
        decoded: list[Transaction] = []
        undecodable: dict[int, LedgerError] = {}
        for i, raw in enumerate(raws):
            try:
                decoded.append(decode_transaction(raw))
            except LedgerError as exc:
                undecodable[i] = exc
        return RawAdmission(
            len(raws), undecodable, self.mempool.begin_admission(decoded, self.next_height)
        )

    def end_admission(
        self, batch: RawAdmission, signed: Sequence[bool]
    ) -> list[Hash32 | LedgerError]:
        """Admit what ``begin_admission`` checked and is signed; announce it (gossip)."""
        outcome = self.end_admission_quietly(batch, signed)
        txs = iter(batch.admission.txs)
        results: list[Hash32 | LedgerError] = []
        for i, refused in enumerate(outcome):
            tx = None if i in batch.undecodable else next(txs)
            if refused is not None:
                results.append(refused)
                continue
            assert tx is not None
            for callback in self.on_admitted:
                callback(tx.encoded)
            results.append(tx.tx_id)
        return results

    def end_admission_quietly(
        self, batch: RawAdmission, signed: Sequence[bool]
    ) -> list[LedgerError | None]:
        """``end_admission`` without announcing (for transactions peers passed on)."""
        admitted = iter(self.mempool.end_admission(batch.admission, signed, self.next_height))
        return [
            batch.undecodable[i] if i in batch.undecodable else next(admitted)
            for i in range(batch.count)
        ]

    def record_evidence(self, first: Vote, second: Vote) -> None:
        """Submit proof of a validator's equivocation to the ``evidence`` contract."""
        if first.validator != second.validator or first.block_hash == second.block_hash:
            return
        slot = evidence_key(first.validator, first.height, first.round, first.type)
        self._submit_evidence(first.validator, slot, "submit", first, second)

    def record_proposal_evidence(self, first: SignedProposal, second: SignedProposal) -> None:
        """Submit proof that a proposer signed two blocks for one height and round."""
        if not first.conflicts_with(second):
            return
        slot = evidence_key(first.proposer, first.height, first.round, PROPOSAL)
        self._submit_evidence(first.proposer, slot, "submit_proposals", first, second)

    def _submit_evidence(
        self,
        offender: bytes,
        slot: str,
        method: str,
        first: Vote | SignedProposal,
        second: Vote | SignedProposal,
    ) -> None:
        key = self.validator_key
        # Validators report validators with power in the current set, each slot once.
        if key is None or self.validators.get_power(offender) == 0:
            return
        if slot in self._evidence_sent or len(self._evidence_sent) >= MAX_EVIDENCE_SENT:
            return
        self._evidence_sent.add(slot)
        tx = make_transaction(
            key,
            chain_id=self.chain_id,
            nonce=self.mempool.get_pending_nonce(key.address),
            contract="evidence",
            method=method,
            args={"first": encode(first.to_value()), "second": encode(second.to_value())},
        )
        try:
            self.submit(tx.encoded)
        except LedgerError as exc:
            log.warning("could not submit evidence: %s", exc)

    # -- blocks ------------------------------------------------------------------

    @property
    def next_height(self) -> int:
        return self.head.height + 1

    def _spend_undo_budget(self, keys: int) -> None:
        """Take ``keys`` from the budget of proofs at past heights, or refuse (busy)."""
        now = time.monotonic()
        elapsed = now - self._undo_budget_at
        self._undo_budget = min(
            float(MAX_UNDO_PER_PROOF), self._undo_budget + elapsed * UNDO_BUDGET_PER_S
        )
        self._undo_budget_at = now
        if keys > self._undo_budget:
            wait = (keys - self._undo_budget) / UNDO_BUDGET_PER_S
            raise LedgerError(
                f"proofs at past heights are rate-limited on this node; retry in {wait:.1f} s",
                code="busy",
            )
        self._undo_budget -= keys

    def has_due_calls(self, now_ms: int) -> bool:
        """Whether a scheduled call falls due in the next block if it is made now."""
        committed = self.committed
        for letter, due_by in ((b"h", self.next_height), (b"t", now_ms)):
            prefix = DUE_PREFIX + letter
            first = committed.scan(prefix, b"", 1)
            if first and int(first[0][0][len(prefix) : len(prefix) + 16], 16) <= due_by:
                return True
        return False

    def is_proposer(self, round_: int = 0) -> bool:
        key = self.validator_key
        if key is None:
            return False
        proposer = self.validators.compute_proposer(self.next_height, round_)
        return proposer.public_key == key.public_key

    def _revert_candidate(self) -> None:
        """Undo the state changes of a block that was executed but not committed."""
        if self._candidate is not None:
            self.state.update(self._candidate.inverse)
            self._candidate = None

    def _apply_candidate(self, result: ExecutionResult) -> Hash32:
        """Apply ``result`` to the state tree (revertible) and return the new state root."""
        self._revert_candidate()
        inverse = {key: self.state.get(key) for key in result.changes}
        self.state.update(result.changes)
        root = self.state.root()
        self._candidate = _Candidate(Hash32(b""), result, inverse)
        return root

    def build_block(self, now_ms: int, round_: int = 0) -> Block:
        """The block this validator proposes at the next height (``getValue()``)."""
        key = self.validator_key
        if key is None:
            raise InvalidBlock("this node has no validator key")
        params = self.genesis.params
        candidates = self.mempool.reap(params.max_block_txs, params.max_block_bytes)
        height = self.next_height
        env = BlockEnv(self.chain_id, height, max(now_ms, self.head.time_ms + 1))
        self._revert_candidate()
        result = execute_transactions(self.registry, self.state, env, candidates, skip_invalid=True)
        for tx, reason in result.skipped:
            log.info("dropping %s from the mempool: %s", tx.tx_id.hex(), reason)
            self.mempool.remove(tx.tx_id)
        state_root = self._apply_candidate(result)
        header = Header(
            chain_id=self.chain_id,
            height=height,
            prev_hash=self.head.hash,
            time_ms=env.time_ms,
            proposer=key.address,
            tx_root=compute_tx_root(result.transactions),
            state_root=state_root,
            receipts_root=compute_receipts_root(result.all_receipts),
            validator_set_hash=self.validators.hash,
        )
        block = Block(header, result.transactions)
        assert self._candidate is not None
        self._candidate.block_hash = block.hash
        return block

    def validate_block(self, block: Block, now_ms: int) -> None:
        """Raise ``InvalidBlock`` unless ``block`` may follow our head (``valid(v)``).

        Leaves the block's execution applied as a candidate, so committing it is cheap.
        """
        if self._candidate is not None and self._candidate.block_hash == block.hash:
            return
        header = block.header
        height = self.next_height
        params = self.genesis.params
        # It extends our chain, on this network.
        if header.chain_id != self.chain_id:
            raise InvalidBlock(f"block is for chain {header.chain_id!r}")
        if header.height != height:
            raise InvalidBlock(f"block is for height {header.height}, we expect {height}")
        if header.prev_hash != self.head.hash:
            raise InvalidBlock(f"block {height} does not extend our block {height - 1}")
        # Its time is after its parent's and not in the future.
        if header.time_ms <= self.head.time_ms:
            raise InvalidBlock(f"block {height} is not later than its parent")
        if header.time_ms > now_ms + params.max_clock_drift_ms:
            raise InvalidBlock(f"block {height} is {header.time_ms - now_ms} ms in the future")
        # It is proposed by a validator and names the validator set in force.
        validators = self.validators
        if not any(v.address == header.proposer for v in validators.validators):
            raise InvalidBlock(f"block {height} is proposed by a non-validator")
        if header.validator_set_hash != validators.hash:
            raise InvalidBlock(f"block {height} names the wrong validator set")
        # Its size is bounded.
        if len(block.transactions) > params.max_block_txs:
            raise InvalidBlock(f"block {height} holds more than {params.max_block_txs} txs")
        if sum(len(tx.encoded) for tx in block.transactions) > params.max_block_bytes:
            raise InvalidBlock(f"block {height} exceeds {params.max_block_bytes} bytes")
        # Its transactions are the ones the header names, each signed by its sender.
        if compute_tx_root(block.transactions) != header.tx_root:
            raise InvalidBlock(f"block {height}: transactions do not match the tx root")
        # A transaction our mempool admitted was verified once already.
        unseen = [tx for tx in block.transactions if tx.tx_id not in self.mempool]
        for tx, signed in zip(unseen, self.verify(unseen), strict=True):
            if not signed:
                raise InvalidBlock(f"block {height}: transaction {tx.tx_id.hex()} is not signed")
        # Executing it gives the receipts and state its header claims.
        self._revert_candidate()
        env = BlockEnv(self.chain_id, height, header.time_ms)
        try:
            result = execute_transactions(self.registry, self.state, env, block.transactions)
        except InvalidTransaction as exc:
            raise InvalidBlock(f"block {height}: {exc.message}") from None
        if compute_receipts_root(result.all_receipts) != header.receipts_root:
            raise InvalidBlock(f"block {height}: receipts root differs from execution")
        root = self._apply_candidate(result)
        if root != header.state_root:
            self._revert_candidate()
            raise InvalidBlock(f"block {height}: state root differs from execution")
        assert self._candidate is not None
        self._candidate.block_hash = block.hash

    def is_valid_block(self, block: Block, now_ms: int) -> bool:
        try:
            self.validate_block(block, now_ms)
        except InvalidBlock as exc:
            log.warning("invalid block proposed: %s", exc.message)
            return False
        return True

    def commit_block(self, block: Block, commit: Commit, now_ms: int) -> None:
        """Store a decided block with its certificate and make it the head."""
        commit.validate(self.chain_id, block.header, self.validators)
        self._commit_certified(block, commit, now_ms)

    def _commit_certified(self, block: Block, commit: Commit, now_ms: int) -> None:
        """``commit_block`` once the certificate is checked."""
        self.validate_block(block, now_ms)
        candidate = self._candidate
        assert candidate is not None and candidate.block_hash == block.hash
        result = candidate.result
        try:
            self._save(block, commit, result)
        except BaseException:
            self._revert_candidate()
            raise
        # The candidate's writes are the committed state now: reads of the new head (the
        # mempool's, the callbacks') must see them.
        self._candidate = None
        # The block is committed now, whatever follows: a failing listener is logged, and
        # the others still hear of it.
        try:
            self.mempool.on_block_committed(block.transactions, block.header.height + 1)
        except Exception:
            log.exception("mempool update after block %d failed", block.header.height)
        for callback in self.on_commit:
            try:
                callback(block, result.receipts, result.scheduled)
            except Exception:
                log.exception("commit listener failed on block %d", block.header.height)

    def apply_synced_block(self, block: Block, commit: Commit) -> None:
        """Apply a block fetched from a peer: its certificate first, then its execution."""
        commit.validate(self.chain_id, block.header, self.validators)
        # A finalised block's time was checked by the validators that signed it (and its
        # certificate just now: once is enough).
        self._commit_certified(block, commit, now_ms=block.header.time_ms)

    def produce_block(self, now_ms: int) -> Block | None:
        """Build, self-certify and commit the next block: for a validator holding more than
        two thirds of the power alone (a single-validator network, tools and tests)."""
        key = self.validator_key
        if (
            key is None
            or 3 * self.validators.get_power(key.public_key) <= 2 * self.validators.total_power
        ):
            return None
        block = self.build_block(now_ms)
        commit = Commit.sign(self.chain_id, block.height, 0, block.hash, [key])
        self.commit_block(block, commit, now_ms)
        return block

    def _save(self, block: Block, commit: Commit, result: ExecutionResult) -> None:
        receipts = result.receipts
        header = block.header
        validators = self.validators
        self.store.save_block(
            height=header.height,
            block_hash=header.hash,
            header=header.encoded,
            commit=commit.encoded,
            txs=[
                (tx.tx_id, tx.encoded, rc.encoded)
                for tx, rc in zip(block.transactions, receipts, strict=True)
            ],
            changes=result.changes,
            validator_set=(validators.hash, encode(validators.to_value())),
            scheduled=[(rc.tx_id, rc.encoded) for rc in result.scheduled],
            undo=self._candidate.inverse if self._candidate is not None else {},
            keep_undo_from=header.height - self.state_history + 1,
            handoff=self._handoff_proof(result, validators),
        )
        self.head = header
        self._validators = None
        self._recent_ids[header.height] = (header, commit, [tx.tx_id for tx in block.transactions])
        self._recent_ids.pop(header.height - RECENT_BLOCK_IDS, None)

    def _handoff_proof(self, result: ExecutionResult, signers: ValidatorSet) -> bytes | None:
        """If the block hands over to another validator set, the state proof of that set
        against the block's state root (the candidate's writes are in the tree)."""
        raw = result.changes.get(VALIDATORS_KEY)
        if raw is None or raw == encode(signers.to_value()):
            return None
        return encode(self.state.prove(VALIDATORS_KEY).to_value())

    def get_handoffs(self, below: int) -> tuple[Handoff, ...]:
        """The validator-set handoffs below height ``below``, in order (at most
        ``MAX_HANDOFFS``): what a client that trusts the genesis validators follows to the
        set that signs a block at that height."""
        rows = self.store.get_handoffs(below, MAX_HANDOFFS + 1)
        if len(rows) > MAX_HANDOFFS:
            raise NotFound(
                f"more than {MAX_HANDOFFS} validator-set handoffs lie below height {below}: "
                "a proof cannot carry them all"
            )
        found = []
        for height, raw in rows:
            header = self.get_header(height)
            stored = self.store.get_block(height)
            assert stored is not None
            found.append(
                Handoff(
                    header,
                    decode_commit(stored.commit),
                    self.get_validator_set(header.validator_set_hash),
                    StateProof.from_value(decode(raw)),
                )
            )
        return tuple(found)

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

    def get_block_ids(self, height: int) -> tuple[Header, Commit | None, list[Hash32]]:
        """A block's header, commit and transaction ids, checked like ``get_block`` (each
        encoding hashes to its id, together they give the header's tx root) but without
        decoding the transactions: what a client watching blocks asks for most. The last
        blocks committed by this process are answered from memory."""
        recent = self._recent_ids.get(height)
        if recent is not None:
            header, commit, ids = recent
            return header, commit, list(ids)
        header = self.get_header(height)
        stored = self.store.get_block(height)
        assert stored is not None
        rows = self.store.get_block_txs(height)
        for row in rows:
            if sha256(row.raw) != row.tx_id:
                raise CorruptionError(
                    f"transaction {row.tx_id.hex()} is damaged; refusing to serve it"
                )
        if compute_root([row.raw for row in rows]) != header.tx_root:
            raise CorruptionError(f"block {height} is damaged; refusing to serve it")
        commit = decode_commit(stored.commit) if stored.commit else None
        return header, commit, [Hash32(row.tx_id) for row in rows]

    def _checked_tx(self, raw: bytes, tx_id: bytes) -> Transaction:
        if sha256(raw) != tx_id:
            raise CorruptionError(f"transaction {tx_id.hex()} is damaged; refusing to serve it")
        return decode_transaction(raw)

    def get_receipts(self, height: int) -> list[Receipt]:
        """The receipts of block ``height``'s transactions, in block order."""
        return [decode_receipt(row.receipt) for row in self.store.get_block_txs(height)]

    def get_scheduled_receipts(self, height: int) -> list[Receipt]:
        """The receipts of the scheduled calls block ``height`` ran, in order."""
        return [decode_receipt(raw) for raw in self.store.get_scheduled_receipts(height)]

    def get_scheduled(self, schedule_id: Hash32) -> dict[str, Any]:
        """A scheduled call: waiting (with its entry) or run (with its receipt)."""
        key = self.committed.get(id_key(schedule_id))
        if key is not None:
            raw = self.committed.get(key)
            if raw is not None:
                return {"status": "waiting", "call": ScheduledCall.decode(raw).to_json()}
        ran = self.store.get_scheduled(schedule_id)
        if ran is None:
            raise NotFound(
                f"no scheduled call {schedule_id.hex()} (neither waiting nor run; "
                "a cancelled call leaves nothing)"
            )
        height, index, receipt = ran
        return {
            "status": "ran",
            "height": height,
            "index": index,
            "receipt": decode_receipt(receipt).to_json(),
        }

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
        # The receipts root covers the transactions' receipts, then the scheduled calls'.
        receipts = self.get_receipts(status.height) + self.get_scheduled_receipts(status.height)
        index = status.index
        receipt = receipts[index]
        return ReceiptProof(
            transaction=block.transactions[index],
            receipt=receipt,
            tx_proof=compute_inclusion_proof([tx.encoded for tx in block.transactions], index),
            receipt_proof=compute_inclusion_proof([r.encoded for r in receipts], index),
            header=block.header,
            commit=commit,
            validators=self.get_validator_set(block.header.validator_set_hash),
            handoffs=self.get_handoffs(below=block.header.height),
        )

    def get_state_proof(
        self, contract: str, key: str, height: int | None = None
    ) -> StateProofBundle:
        """A key's value (or absence) after block ``height`` (default: the head), with
        everything to check it offline. Heights back to ``state_history`` blocks below the
        head can be proven."""
        head = self.head.height
        height = head if height is None else height
        if height == 0:
            raise NotFound("the genesis block has no commit certificate to prove against")
        if height > head:
            raise NotFound(f"no block at height {height}; the head is {head}")
        undo: dict[bytes, bytes | None] = {}
        if height < head:
            undo_from = self.store.undo_from()
            if undo_from is None or height < undo_from - 1:
                oldest = "none" if undo_from is None else str(max(1, undo_from - 1))
                raise NotFound(
                    f"the state at height {height} is no longer kept by this node "
                    f"(oldest provable height: {oldest})"
                )
            found = self.store.state_undo_since(height, MAX_UNDO_PER_PROOF)
            if found is None:
                raise NotFound(
                    f"the state at height {height} is too far back to prove here: more than "
                    f"{MAX_UNDO_PER_PROOF} keys changed since"
                )
            self._spend_undo_budget(len(found))
            undo = found
        block, commit = self.get_block(height)
        if commit is None:
            raise NotFound(f"block {height} has no commit")
        # Prove the state after block `height`: lift a candidate's changes and those of the
        # blocks above `height` for the moment, then put them back. This runs without
        # yielding, so no block is committed meanwhile.
        candidate = self._candidate
        if candidate is not None:
            self.state.update(candidate.inverse)
        redo = {k: self.state.get(k) for k in undo}
        try:
            self.state.update(undo)
            if self.state.root() != block.header.state_root:
                raise CorruptionError(
                    f"the stored history does not rebuild the state root of block {height}"
                )
            proof = self.state.prove(contract_state_key(contract, key))
        finally:
            self.state.update(redo)
            if candidate is not None:
                self.state.update(candidate.result.changes)
        return StateProofBundle(
            contract=contract,
            key=key,
            proof=proof,
            header=block.header,
            commit=commit,
            validators=self.get_validator_set(block.header.validator_set_hash),
            handoffs=self.get_handoffs(below=block.header.height),
        )

    def query(self, contract: str, method: str, args: dict[str, Value]) -> Value:
        return run_query(self.registry, self.committed, self.head.height, contract, method, args)

    def get_state_value(self, contract: str, key: str) -> bytes | None:
        return self.committed.get(f"{contract}/{key}".encode())
