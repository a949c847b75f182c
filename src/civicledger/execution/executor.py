"""Apply transactions and blocks to state: the state transition function.

``execute_transactions`` runs a block's transactions in order against a ``BlockOverlay``:
for each one it checks the chain id, expiry and nonce (a transaction failing these has no
place in a block), bumps the sender's nonce, then runs the contract call in its own
``TxOverlay`` with a fuel meter. A call that fails (a ``LedgerError`` or any exception
raised by contract code) is rolled back and gets a failed receipt; it never stops the
block. Specified in ``docs/spec/blocks.md`` ("Executing a block").
"""

from __future__ import annotations

from dataclasses import dataclass

from civicledger.chain.receipt import STATUS_FAILED, STATUS_OK, Receipt
from civicledger.chain.transaction import Transaction
from civicledger.contracts.base import FUEL_BASE, QUERY_FUEL, Args, Context, FuelMeter, ViewContext
from civicledger.contracts.registry import ContractRegistry
from civicledger.contracts.schedule import (
    DUE_PREFIX,
    MAX_SCHEDULED_FUEL_PER_BLOCK,
    MAX_SCHEDULED_PER_BLOCK,
    ScheduledCall,
    id_key,
)
from civicledger.encoding import Value, decode, encode
from civicledger.errors import ContractError, InvalidTransaction, LedgerError, OutOfFuel
from civicledger.state.overlay import BlockOverlay, StateReader, TxOverlay
from civicledger.state.system import NEXT_VALIDATORS_KEY, VALIDATORS_KEY
from civicledger.types import Address, Hash32, PublicKey

__all__ = [
    "BlockEnv",
    "ExecutionResult",
    "execute_transactions",
    "get_nonce",
    "nonce_key",
    "run_due_calls",
    "run_query",
    "validate_inclusion",
]


@dataclass(frozen=True, slots=True)
class BlockEnv:
    """What every call in a block sees of the block."""

    chain_id: str
    height: int
    time_ms: int


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    #: Transactions executed, in order (the block body).
    transactions: tuple[Transaction, ...]
    #: One receipt per executed transaction.
    receipts: tuple[Receipt, ...]
    #: Net state changes (key → new value, ``None`` = deleted).
    changes: dict[bytes, bytes | None]
    #: Transactions left out (only when ``skip_invalid``), with the reason.
    skipped: tuple[tuple[Transaction, InvalidTransaction], ...]
    #: Receipts of the scheduled calls that ran after the transactions, in order.
    scheduled: tuple[Receipt, ...] = ()

    @property
    def all_receipts(self) -> tuple[Receipt, ...]:
        """What the header's receipts root commits to: the transactions' receipts, then
        the scheduled calls'."""
        return self.receipts + self.scheduled


def nonce_key(address: Address) -> bytes:
    """State key of an account's next nonce; ``$`` keeps it apart from contract keys."""
    return b"$sys/nonce/" + address


def get_nonce(state: StateReader, address: Address) -> int:
    raw = state.get(nonce_key(address))
    if raw is None:
        return 0
    value = decode(raw)
    assert isinstance(value, int)
    return value


def validate_inclusion(state: StateReader, env: BlockEnv, tx: Transaction) -> None:
    """Raise ``InvalidTransaction`` if ``tx`` may not be included in this block."""
    # The transaction is for this network.
    if tx.chain_id != env.chain_id:
        raise InvalidTransaction(
            f"transaction is for chain {tx.chain_id!r}, this is {env.chain_id!r}",
            code="wrong_chain_id",
        )
    # It has not expired.
    if tx.expiry and tx.expiry < env.height:
        raise InvalidTransaction(f"transaction expired at height {tx.expiry}", code="expired")
    # It is the sender's next transaction: no replay, no gap.
    expected = get_nonce(state, tx.sender_address)
    if tx.nonce != expected:
        code = "nonce_too_low" if tx.nonce < expected else "nonce_gap"
        raise InvalidTransaction(
            f"nonce {tx.nonce} is not the sender's next nonce {expected}", code=code
        )


def _execute_call(
    registry: ContractRegistry,
    block: BlockOverlay,
    env: BlockEnv,
    *,
    receipt_id: Hash32,
    contract_name: str,
    method: str,
    args: dict[str, Value],
    fuel_limit: int,
    sender: Address,
    sender_key: PublicKey,
    scheduled: bool,
) -> Receipt:
    """Run one call in its own overlay; its writes reach ``block`` only if it succeeds."""
    fuel = FuelMeter(fuel_limit)
    overlay = TxOverlay(block)
    try:
        fuel.charge(FUEL_BASE)
        contract = registry.get(contract_name, overlay)
        fn = contract.get_method(method, "call")
        ctx = Context(
            overlay,
            contract_name,
            fuel,
            chain_id=env.chain_id,
            height=env.height,
            time_ms=env.time_ms,
            tx_id=receipt_id,
            sender=sender,
            sender_key=sender_key,
            registry=registry,
            scheduled=scheduled,
        )
        result = fn(ctx, Args(dict(args)))
        encode(result)  # the result must be encodable: it goes into the receipt
    except OutOfFuel as exc:
        return Receipt(receipt_id, STATUS_FAILED, exc.code, exc.message, fuel_limit, (), None)
    except LedgerError as exc:
        code = exc.code if isinstance(exc, ContractError) else f"contract_{exc.code}"
        return Receipt(receipt_id, STATUS_FAILED, code, exc.message, fuel.used, (), None)
    except (RecursionError, MemoryError) as exc:
        message = f"contract exhausted a resource: {type(exc).__name__}"
        return Receipt(receipt_id, STATUS_FAILED, "contract_crashed", message, fuel.used, (), None)
    except Exception as exc:  # contract code is not trusted to be bug-free
        message = f"contract raised {type(exc).__name__}: {exc}"[:500]
        return Receipt(receipt_id, STATUS_FAILED, "contract_crashed", message, fuel.used, (), None)
    overlay.commit()
    return Receipt(receipt_id, STATUS_OK, "", "", fuel.used, tuple(ctx.events), result)


def execute_transaction(
    registry: ContractRegistry, block: BlockOverlay, env: BlockEnv, tx: Transaction
) -> Receipt:
    """Run one admitted transaction; its writes reach ``block`` only if it succeeds."""
    block.writes[nonce_key(tx.sender_address)] = encode(tx.nonce + 1)
    return _execute_call(
        registry,
        block,
        env,
        receipt_id=tx.tx_id,
        contract_name=tx.contract,
        method=tx.method,
        args=tx.args,
        fuel_limit=tx.fuel_limit,
        sender=tx.sender_address,
        sender_key=tx.sender,
        scheduled=False,
    )


def _due_calls(block: BlockOverlay, env: BlockEnv) -> list[tuple[bytes, bytes]]:
    """The scheduled calls due in this block, in due order, at most a block's worth:
    those due by height first, then those due by time. Each kind has at least half the
    room when it has calls due, so neither can keep the other waiting for ever."""
    found: list[list[tuple[bytes, bytes]]] = []
    for letter, now in ((b"h", env.height), (b"t", env.time_ms)):
        prefix = DUE_PREFIX + letter
        due: list[tuple[bytes, bytes]] = []
        for key, raw in block.scan(prefix, b"", MAX_SCHEDULED_PER_BLOCK):
            if int(key[len(prefix) : len(prefix) + 16], 16) > now:
                break
            due.append((key, raw))
        found.append(due)
    by_height, by_time = found
    half = MAX_SCHEDULED_PER_BLOCK // 2
    heights = min(len(by_height), max(half, MAX_SCHEDULED_PER_BLOCK - len(by_time)))
    times = min(len(by_time), MAX_SCHEDULED_PER_BLOCK - heights)
    return by_height[:heights] + by_time[:times]


def run_due_calls(registry: ContractRegistry, block: BlockOverlay, env: BlockEnv) -> list[Receipt]:
    """Run the scheduled calls that fall due in this block, after its transactions.

    Each is removed from the schedule first, so it runs once whatever its outcome; it runs
    like a transaction (own overlay, own fuel limit, rolled back on failure) and its
    receipt's id is the schedule's id. The fuel limits of the calls a block runs add up
    to at most ``MAX_SCHEDULED_FUEL_PER_BLOCK``: the first call that does not fit, and all
    after it, wait for the next block.
    """
    receipts: list[Receipt] = []
    fuel_budget = MAX_SCHEDULED_FUEL_PER_BLOCK
    for key, _ in _due_calls(block, env):
        raw = block.get(key)  # read again: an earlier call of this block may have cancelled it
        if raw is None:
            continue
        try:
            entry = ScheduledCall.decode(raw)
        except ContractError:
            block.writes[key] = None  # unreadable (only the chain writes these keys): dropped
            continue
        if entry.fuel > fuel_budget:
            break  # the block's fuel for scheduled calls is spent: this one and the rest wait
        fuel_budget -= entry.fuel
        block.writes[key] = None
        block.writes[id_key(entry.id)] = None
        receipts.append(
            _execute_call(
                registry,
                block,
                env,
                receipt_id=entry.id,
                contract_name=entry.contract,
                method=entry.method,
                args=entry.args,
                fuel_limit=entry.fuel,
                sender=entry.sender,
                sender_key=entry.sender_key,
                scheduled=True,
            )
        )
    return receipts


def execute_transactions(
    registry: ContractRegistry,
    state: StateReader,
    env: BlockEnv,
    transactions: list[Transaction] | tuple[Transaction, ...],
    *,
    skip_invalid: bool = False,
) -> ExecutionResult:
    """Execute a block's transactions in order.

    A transaction that may not be included (wrong chain, expired, wrong nonce) makes the
    block invalid (``InvalidTransaction`` propagates) unless ``skip_invalid`` is set, as it
    is for the block producer, which then leaves it out.
    """
    block = BlockOverlay(state)
    included: list[Transaction] = []
    receipts: list[Receipt] = []
    skipped: list[tuple[Transaction, InvalidTransaction]] = []
    for tx in transactions:
        try:
            validate_inclusion(block, env, tx)
        except InvalidTransaction as exc:
            if not skip_invalid:
                raise
            skipped.append((tx, exc))
            continue
        receipts.append(execute_transaction(registry, block, env, tx))
        included.append(tx)
    scheduled = run_due_calls(registry, block, env)
    end_block(block, env)
    return ExecutionResult(
        tuple(included), tuple(receipts), block.changes(), tuple(skipped), tuple(scheduled)
    )


def end_block(block: BlockOverlay, env: BlockEnv) -> None:
    """After the transactions: an approved validator set due at the next height takes over,
    so the state after block ``h`` names the validators of block ``h + 1``."""
    raw = block.get(NEXT_VALIDATORS_KEY)
    if raw is None:
        return
    value = decode(raw)
    assert isinstance(value, list) and isinstance(value[0], int)
    if value[0] <= env.height + 1:
        block.writes[VALIDATORS_KEY] = encode(value[1])
        block.writes[NEXT_VALIDATORS_KEY] = None


def run_query(
    registry: ContractRegistry,
    state: StateReader,
    height: int,
    contract_name: str,
    method: str,
    args: dict[str, Value],
) -> Value:
    """Run a read-only ``@view`` method against committed state."""
    contract = registry.get(contract_name, state)
    fn = contract.get_method(method, "view")
    ctx = ViewContext(state, contract_name, FuelMeter(QUERY_FUEL), height, registry=registry)
    return fn(ctx, Args(dict(args)))
