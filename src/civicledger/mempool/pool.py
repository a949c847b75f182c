"""The mempool: valid transactions waiting for a block.

Admission runs the cheap checks first and the signature check last: decode → size →
chain id → names known → expiry → nonce window → duplicate → signature. A transaction
whose nonce is ahead of the sender's next nonce waits (up to ``max_nonce_gap`` ahead)
until the gap is filled. Everything is bounded: total count, total bytes, per sender.
``reap`` hands the block producer transactions in arrival order, each sender's in nonce
order with no gaps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from civicledger.chain.transaction import Transaction, decode_transaction
from civicledger.contracts.registry import ContractRegistry
from civicledger.errors import InvalidTransaction, LedgerError, MempoolFull
from civicledger.state.overlay import StateReader
from civicledger.types import Address, Hash32

__all__ = ["Admission", "Mempool", "MempoolLimits", "verify_each"]


def verify_each(txs: Sequence[Transaction]) -> list[bool]:
    """Check each transaction's signature in turn (``Mempool.admit_many``'s default)."""
    return [tx.is_signature_valid() for tx in txs]


@dataclass(frozen=True, slots=True)
class MempoolLimits:
    max_txs: int = 50_000
    max_bytes: int = 64 * 1024 * 1024
    #: A transaction may be at most this many nonces ahead of its sender's next nonce.
    max_nonce_gap: int = 1_000
    #: At most this many of a sender's waiting transactions may lie beyond a gap (they
    #: cannot be included until it is filled).
    max_gapped_per_sender: int = 16
    #: A transaction still waiting this many blocks after it arrived is dropped.
    max_age_blocks: int = 600


@dataclass(slots=True)
class Admission:
    """A batch between ``Mempool.begin_admission`` and ``Mempool.end_admission``."""

    txs: list[Transaction]
    #: For each transaction, the reason it was refused (``None``: not refused so far).
    outcome: list[LedgerError | None]
    #: Where the transactions whose signatures must be checked stand in ``txs``.
    indices: list[int]
    #: Those transactions.
    to_verify: list[Transaction]


class Mempool:
    def __init__(
        self,
        chain_id: str,
        registry: ContractRegistry,
        get_nonce: Callable[[Address], int],
        limits: MempoolLimits | None = None,
        state: Callable[[], StateReader] | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.registry = registry
        self._get_nonce = get_nonce
        self.limits = limits or MempoolLimits()
        #: The committed state, to find contracts deployed on chain.
        self._state = state
        #: Arrival order: tx id → transaction.
        self._txs: dict[Hash32, Transaction] = {}
        self._by_sender: dict[Address, dict[int, Hash32]] = {}
        #: The height that was next when each transaction arrived (for ageing out).
        self._arrived: dict[Hash32, int] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._txs

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, tx_id: Hash32) -> Transaction | None:
        return self._txs.get(tx_id)

    def get_pending_nonce(self, address: Address) -> int:
        """The nonce the sender's next transaction should carry, counting waiting ones."""
        return _run_end(self._by_sender.get(address, {}), self._get_nonce(address))

    def admit_raw(self, data: bytes, next_height: int) -> Transaction:
        """Decode and admit; raise a precise ``LedgerError`` if the transaction is refused."""
        tx = decode_transaction(data)
        self.admit(tx, next_height)
        return tx

    def admit(self, tx: Transaction, next_height: int) -> None:
        self.check(tx, next_height)
        # The sender signed it (last: the most expensive check).
        if not tx.is_signature_valid():
            raise _bad_signature()
        self._add(tx, next_height)

    def admit_many(
        self,
        txs: Sequence[Transaction],
        next_height: int,
        verify: Callable[[Sequence[Transaction]], list[bool]] = verify_each,
    ) -> list[LedgerError | None]:
        """Admit ``txs`` in order as ``admit`` would; ``verify`` checks the signatures of
        those that pass the cheap checks all at once (e.g. on several cores). Returns, for
        each transaction, ``None`` if admitted or the reason it was refused."""
        admission = self.begin_admission(txs, next_height)
        return self.end_admission(admission, verify(admission.to_verify), next_height)

    def begin_admission(self, txs: Sequence[Transaction], next_height: int) -> Admission:
        """The first half of ``admit_many``: the cheap checks. The signatures of
        ``to_verify`` may then be checked anywhere (another thread), while the pool
        changes; ``end_admission`` admits those that are signed and still fit."""
        outcome: list[LedgerError | None] = [None] * len(txs)
        indices: list[int] = []
        for i, tx in enumerate(txs):
            try:
                self.check(tx, next_height)
            except LedgerError as exc:
                outcome[i] = exc
            else:
                indices.append(i)
        return Admission(list(txs), outcome, indices, [txs[i] for i in indices])

    def end_admission(
        self, admission: Admission, signed: Sequence[bool], next_height: int
    ) -> list[LedgerError | None]:
        outcome, txs = admission.outcome, admission.txs
        for i, ok in zip(admission.indices, signed, strict=True):
            tx = txs[i]
            if not ok:
                outcome[i] = _bad_signature()
                continue
            # Checked again against the pool: an earlier transaction of the batch, or
            # one admitted or committed meanwhile, may have taken its nonce or the room.
            try:
                if tx.expiry and tx.expiry < next_height:
                    raise InvalidTransaction(
                        f"transaction expired at height {tx.expiry}; the next block is "
                        f"{next_height}",
                        code="expired",
                    )
                self._check_against_pool(tx)
            except LedgerError as exc:
                outcome[i] = exc
            else:
                self._add(tx, next_height)
        return outcome

    def check(self, tx: Transaction, next_height: int) -> None:
        """Raise the reason ``tx`` would be refused, signature apart (it is not checked)."""
        # The transaction is for this network.
        if tx.chain_id != self.chain_id:
            raise InvalidTransaction(
                f"transaction is for chain {tx.chain_id!r}, this node serves {self.chain_id!r}",
                code="wrong_chain_id",
            )
        # It calls a method that exists.
        try:
            state = self._state() if self._state is not None else None
            self.registry.get(tx.contract, state).get_method(tx.method, "call")
        except LedgerError as exc:
            raise InvalidTransaction(exc.message, code=exc.code) from None
        # It has not expired.
        if tx.expiry and tx.expiry < next_height:
            raise InvalidTransaction(
                f"transaction expired at height {tx.expiry}; the next block is {next_height}",
                code="expired",
            )
        self._check_against_pool(tx)

    def _check_against_pool(self, tx: Transaction) -> None:
        tx_id = tx.tx_id
        # It is not already waiting.
        if tx_id in self._txs:
            raise InvalidTransaction("transaction is already in the mempool", code="duplicate")
        # Its nonce is neither used nor too far ahead.
        sender = tx.sender_address
        expected = self._get_nonce(sender)
        if tx.nonce < expected:
            raise InvalidTransaction(
                f"nonce {tx.nonce} was already used; the sender's next nonce is {expected}",
                code="nonce_too_low",
            )
        if tx.nonce > expected + self.limits.max_nonce_gap:
            raise InvalidTransaction(
                f"nonce {tx.nonce} is more than {self.limits.max_nonce_gap} ahead of the "
                f"sender's next nonce {expected}",
                code="nonce_gap",
            )
        pending = self._by_sender.get(sender)
        if pending is not None and tx.nonce in pending:
            raise InvalidTransaction(
                f"another transaction with nonce {tx.nonce} from this sender is waiting",
                code="nonce_taken",
            )
        # Transactions beyond a gap cannot be included until it is filled: few may wait.
        if pending and tx.nonce > (run_end := _run_end(pending, expected)):
            gapped = sum(1 for n in pending if n > run_end)
            if gapped >= self.limits.max_gapped_per_sender:
                raise InvalidTransaction(
                    f"{gapped} transactions of this sender already wait beyond nonce "
                    f"{run_end}; send that nonce first",
                    code="nonce_gap",
                )
        # There is room.
        size = len(tx.encoded)
        if len(self._txs) >= self.limits.max_txs or self._bytes + size > self.limits.max_bytes:
            raise MempoolFull(
                f"mempool is full ({len(self._txs)} transactions, {self._bytes} bytes); retry later"
            )

    def _add(self, tx: Transaction, next_height: int) -> None:
        tx_id = tx.tx_id
        sender = tx.sender_address
        size = len(tx.encoded)
        self._txs[tx_id] = tx
        self._by_sender.setdefault(sender, {})[tx.nonce] = tx_id
        self._arrived[tx_id] = next_height
        self._bytes += size

    def reap(self, max_txs: int, max_bytes: int) -> list[Transaction]:
        """Transactions ready for the next block: arrival order, per-sender nonce order."""
        taken: list[Transaction] = []
        taken_ids: set[Hash32] = set()
        next_nonce: dict[Address, int] = {}
        size = 0
        for tx_id, tx in self._txs.items():
            if len(taken) >= max_txs:
                break
            if tx_id in taken_ids:
                continue
            sender = tx.sender_address
            nonce = next_nonce.get(sender)
            if nonce is None:
                nonce = self._get_nonce(sender)
            pending = self._by_sender[sender]
            # Take this sender's consecutive run starting at its next nonce.
            while nonce in pending and len(taken) < max_txs:
                candidate = self._txs[pending[nonce]]
                if size + len(candidate.encoded) > max_bytes:
                    return taken
                size += len(candidate.encoded)
                taken.append(candidate)
                taken_ids.add(pending[nonce])
                nonce += 1
            next_nonce[sender] = nonce
        return taken

    def remove(self, tx_id: Hash32) -> None:
        tx = self._txs.pop(tx_id, None)
        if tx is None:
            return
        self._arrived.pop(tx_id, None)
        self._bytes -= len(tx.encoded)
        sender = tx.sender_address
        pending = self._by_sender[sender]
        pending.pop(tx.nonce, None)
        if not pending:
            del self._by_sender[sender]

    def on_block_committed(self, txs: tuple[Transaction, ...], next_height: int) -> None:
        """Drop the committed transactions and any that can no longer be included."""
        for tx in txs:
            self.remove(tx.tx_id)
        touched = {tx.sender_address for tx in txs}
        for sender in touched:
            nonce = self._get_nonce(sender)
            for n, tx_id in list(self._by_sender.get(sender, {}).items()):
                if n < nonce:
                    self.remove(tx_id)
        oldest = next_height - self.limits.max_age_blocks
        expired = [
            i
            for i, tx in self._txs.items()
            if (tx.expiry and tx.expiry < next_height) or self._arrived.get(i, next_height) < oldest
        ]
        for tx_id in expired:
            self.remove(tx_id)


def _bad_signature() -> InvalidTransaction:
    return InvalidTransaction(
        "signature does not match the transaction and sender", code="invalid_signature"
    )


def _run_end(pending: dict[int, Hash32], nonce: int) -> int:
    """The first nonce from ``nonce`` on that is not waiting in ``pending``."""
    while nonce in pending:
        nonce += 1
    return nonce
