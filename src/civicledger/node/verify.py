"""``civic verify``: prove that a node's stored copy of the chain is intact.

Walks every stored block from genesis and checks, in order: the header decodes and hashes
to its stored hash; it links to the previous block; chain id, height and time are right;
it names the validator set; its commit certificate is valid; every transaction is stored
under its own hash, is for this chain and is correctly signed; the transactions root
matches; re-executing the transactions from the replayed state gives the stored receipts,
the receipts root and the state root in the header. Finally the stored current state must
equal the replayed one, key for key. The first difference is reported with its height.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from civicledger.chain.block import (
    Header,
    compute_receipts_root,
    compute_tx_root,
    decode_commit,
    decode_header,
)
from civicledger.chain.genesis import Genesis
from civicledger.chain.transaction import decode_transaction
from civicledger.contracts.registry import ContractRegistry, default_registry
from civicledger.crypto.hashing import sha256
from civicledger.encoding import encode
from civicledger.errors import LedgerError
from civicledger.execution.executor import BlockEnv, execute_transactions
from civicledger.state.ordered import StateTree
from civicledger.state.system import VALIDATORS_KEY, get_validator_set
from civicledger.storage.sqlite import BlockStore

__all__ = ["VerifyReport", "verify_chain"]


@dataclass(slots=True)
class VerifyReport:
    blocks: int = 0
    transactions: int = 0
    state_keys: int = 0
    head_height: int = -1
    head_hash: str = ""
    #: Height of the first block that failed, or ``None`` if the chain is intact.
    failed_height: int | None = None
    #: What failed there.
    problem: str = ""
    checks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed_height is None and not self.problem


class _Failure(Exception):
    def __init__(self, height: int, problem: str) -> None:
        super().__init__(problem)
        self.height = height
        self.problem = problem


def verify_chain(
    store: BlockStore,
    genesis: Genesis,
    *,
    registry: ContractRegistry | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    registry = registry or default_registry()
    report = VerifyReport()
    try:
        _verify(store, genesis, registry, report, progress)
    except _Failure as failure:
        report.failed_height = failure.height
        report.problem = failure.problem
    return report


def _verify(
    store: BlockStore,
    genesis: Genesis,
    registry: ContractRegistry,
    report: VerifyReport,
    progress: Callable[[int], None] | None,
) -> None:
    state = StateTree.from_items(genesis.initial_state().items())
    previous: Header | None = None
    for stored in store.iter_blocks():
        height = stored.height

        def fail(problem: str, height: int = height) -> _Failure:
            return _Failure(height, problem)

        try:
            header = decode_header(stored.header)
        except LedgerError as exc:
            raise fail(f"header does not decode: {exc}") from None
        # The header hashes to the hash it is stored under.
        if header.hash != stored.hash:
            raise fail("header bytes do not hash to the stored block hash")
        # Heights run 0, 1, 2... on this chain.
        expected_height = 0 if previous is None else previous.height + 1
        if header.height != height or height != expected_height:
            raise fail(f"expected block {expected_height}, found height {header.height}")
        if header.chain_id != genesis.chain_id:
            raise fail(f"block is for chain {header.chain_id!r}")
        # It links to the previous block and comes after it in time.
        if previous is None:
            expected_genesis = genesis.block(state.root())
            if header != expected_genesis.header:
                raise fail("genesis block differs from the one the genesis file defines")
            if stored.commit:
                raise fail("genesis block carries a commit")
            previous = header
            report.blocks += 1
            continue
        if header.prev_hash != previous.hash:
            raise fail(f"previous-block hash does not match block {height - 1}")
        if header.time_ms <= previous.time_ms:
            raise fail("block time is not after the previous block's")
        # The validators that must sign are the ones the replayed state names.
        validators = get_validator_set(state)
        if header.validator_set_hash != validators.hash:
            raise fail("header names a validator set other than the one in force")
        # The commit certificate finalises this header.
        try:
            decode_commit(stored.commit).validate(genesis.chain_id, header, validators)
        except LedgerError as exc:
            raise fail(f"commit certificate: {exc}") from None
        rows = store.get_block_txs(height)
        if len(rows) != stored.tx_count:
            raise fail(f"{stored.tx_count} transactions recorded, {len(rows)} stored")
        txs = []
        for row in rows:
            # Each transaction is stored under its own id, decodes and is signed.
            if sha256(row.raw) != row.tx_id:
                raise fail(f"transaction {row.index} ({row.tx_id.hex()}) was altered")
            try:
                tx = decode_transaction(row.raw)
            except LedgerError as exc:
                raise fail(f"transaction {row.index} does not decode: {exc}") from None
            if not tx.is_signature_valid():
                raise fail(f"transaction {row.index} ({row.tx_id.hex()}) has a bad signature")
            txs.append(tx)
        if compute_tx_root(txs) != header.tx_root:
            raise fail("transactions do not match the header's transactions root")
        # Re-executing gives the same receipts and state.
        env = BlockEnv(genesis.chain_id, height, header.time_ms)
        try:
            result = execute_transactions(registry, state, env, txs)
        except LedgerError as exc:
            raise fail(f"block does not execute: {exc}") from None
        for row, receipt in zip(rows, result.receipts, strict=True):
            if receipt.encoded != row.receipt:
                raise fail(f"stored receipt of transaction {row.index} differs from re-execution")
        stored_scheduled = store.get_scheduled_receipts(height)
        if [rc.encoded for rc in result.scheduled] != stored_scheduled:
            raise fail("stored receipts of scheduled calls differ from re-execution")
        if compute_receipts_root(result.all_receipts) != header.receipts_root:
            raise fail("receipts do not match the header's receipts root")
        state.update(result.changes)
        if state.root() != header.state_root:
            raise fail("state root after re-execution differs from the header's")
        # A recorded validator-set handoff is the proof re-execution gives. (Chains that
        # changed validators before handoffs were recorded have no row there.)
        handoff = store.get_handoff(height)
        if handoff is not None:
            changed = validators.hash != get_validator_set(state).hash
            if not changed or handoff != encode(state.prove(VALIDATORS_KEY).to_value()):
                raise fail("stored validator-set handoff differs from re-execution")
        previous = header
        report.blocks += 1
        report.transactions += len(txs)
        if progress is not None:
            progress(height)
    if previous is None:
        raise _Failure(0, "the database holds no blocks")
    report.head_height = previous.height
    report.head_hash = previous.hash.hex()
    # The node's current state is exactly the replayed state.
    stored_count = 0
    for key, value in store.iter_state():
        stored_count += 1
        if state.get(key) != value:
            raise _Failure(previous.height, f"stored state key {key!r} differs from replay")
    if stored_count != len(state):
        raise _Failure(
            previous.height,
            f"stored state has {stored_count} keys, replay gives {len(state)}",
        )
    report.state_keys = stored_count
