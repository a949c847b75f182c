"""The one interface between transactions and contracts.

A contract is a class with a ``name`` and methods marked ``@call`` (they may change state;
reached by transactions) or ``@view`` (read-only; reached by queries). Each receives a
context (``ctx``) giving the sender, transaction id, height, block time, namespaced state
access, events and ``require``; and an ``Args`` holding the named arguments with typed,
bounded accessors. Every state access and event costs fuel (schedule in
``docs/spec/contracts.md``). Built-in system contracts and sandboxed user contracts
(``contracts.sandbox``) share this interface.

Example::

    class Counter(Contract):
        name = "counter"

        @call
        def add(self, ctx: Context, args: Args) -> Value:
            n = args.integer("n", minimum=1, maximum=100)
            total = ctx.get_int("total") + n
            ctx.set("total", total)
            ctx.emit("Added", n=n, total=total)
            return total

        @view
        def total(self, ctx: ViewContext, args: Args) -> Value:
            return ctx.get_int("total")
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from civicledger.chain.block import ValidatorSet
from civicledger.chain.receipt import Event
from civicledger.contracts.schedule import (
    KIND_HEIGHT,
    KIND_TIME,
    MAX_DUE,
    MAX_SCHEDULED_ARGS_BYTES,
    MAX_SCHEDULED_FUEL,
    MAX_SCHEDULES_PER_CALL,
    MAX_SCHEDULES_PER_SCHEDULED_CALL,
    ScheduledCall,
    id_key,
    schedule_id,
)
from civicledger.encoding import Value, decode, encode
from civicledger.errors import ContractError, EncodeError, OutOfFuel
from civicledger.state.overlay import StateReader, TxOverlay
from civicledger.state.system import VALIDATORS_KEY
from civicledger.types import ADDRESS_SIZE, HASH_SIZE, Address, Hash32, PublicKey

if TYPE_CHECKING:
    from civicledger.contracts.registry import ContractRegistry

__all__ = [
    "FUEL_BASE",
    "FUEL_EVENT",
    "FUEL_READ",
    "FUEL_SCAN_SKIP",
    "FUEL_WRITE",
    "MAX_EVENTS",
    "MAX_ITEMS",
    "MAX_KEY_LENGTH",
    "MAX_VALUE_SIZE",
    "Args",
    "Context",
    "Contract",
    "FuelMeter",
    "ViewContext",
    "call",
    "state_key",
    "view",
]

#: Fuel charged for every transaction before the call runs.
FUEL_BASE = 1_000
#: Fuel per state read, plus one per byte read.
FUEL_READ = 100
#: Fuel per state write or delete, plus ten per byte written.
FUEL_WRITE = 500
#: Fuel per event, plus one per byte of event data.
FUEL_EVENT = 200
#: Fuel a query may use (queries are not transactions but are bounded too).
QUERY_FUEL = 10_000_000
#: Fuel per read-only call into another contract, plus one per byte of its result.
FUEL_CALL_VIEW = 500
#: How deep read-only calls into other contracts may nest.
MAX_VIEW_DEPTH = 4

MAX_KEY_LENGTH = 256
#: Most entries one ``ctx.items`` call returns.
MAX_ITEMS = 256
#: Fuel per entry a ``ctx.items`` scan goes past without returning it (a pending deletion,
#: or the older value of a key written again in the call or the block).
FUEL_SCAN_SKIP = 20
MAX_VALUE_SIZE = 16 * 1024
MAX_EVENTS = 64
#: Event values of these types cannot change after ``emit``.
_SCALARS = frozenset({int, str, bytes, bool, type(None)})
MAX_EVENT_SIZE = 4 * 1024

F = TypeVar("F", bound=Callable[..., Value])

#: Contracts allowed to write ``$sys/`` state.
SYSTEM_WRITERS = frozenset({"governance"})
#: Contracts allowed to charge the sender a fee in the native currency.
FEE_CHARGERS = frozenset({"contracts"})


def call(fn: F) -> F:
    """Mark a method as callable by transactions."""
    fn.__civic_kind__ = "call"  # type: ignore[attr-defined]
    return fn


def view(fn: F) -> F:
    """Mark a method as a read-only query."""
    fn.__civic_kind__ = "view"  # type: ignore[attr-defined]
    return fn


def state_key(contract: str, key: str) -> bytes:
    """The global state key of a contract's key: ``<contract>/<key>`` in UTF-8."""
    return f"{contract}/{key}".encode()


class FuelMeter:
    """Counts fuel and stops the call when the limit is passed."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def charge(self, amount: int) -> None:
        self.used += amount
        if self.used > self.limit:
            self.used = self.limit
            raise OutOfFuel(f"out of fuel: the call needs more than its limit of {self.limit}")


class ViewContext:
    """Read-only access to one contract's state."""

    def __init__(
        self,
        reader: StateReader,
        contract: str,
        fuel: FuelMeter,
        height: int,
        *,
        registry: ContractRegistry | None = None,
        depth: int = 0,
        call_depth: int = 0,
    ) -> None:
        self._reader = reader
        self._registry = registry
        self._depth = depth
        #: Calls of sandboxed code already on the stack when this context's method runs
        #: (a read-only call from another contract): they count towards the sandbox's
        #: ``MAX_CALL_DEPTH``, so that bound holds for the whole stack.
        self.call_depth = call_depth
        self.contract = contract
        self.fuel = fuel
        #: Height of the state being read (the last committed block for queries).
        self.height = height

    def _key(self, key: str) -> bytes:
        if not 0 < len(key) <= MAX_KEY_LENGTH:
            raise ContractError(f"state key must be 1 to {MAX_KEY_LENGTH} characters")
        return state_key(self.contract, key)

    def get(self, key: str, default: Value = None) -> Value:
        raw = self._reader.get(self._key(key))
        self.fuel.charge(FUEL_READ + (len(raw) if raw else 0))
        if raw is None:
            return default
        return decode(raw)

    def get_int(self, key: str) -> int:
        value = self.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ContractError(f"state key {key!r} does not hold an integer")
        return value

    def has(self, key: str) -> bool:
        self.fuel.charge(FUEL_READ)
        return self._reader.get(self._key(key)) is not None

    def items(self, prefix: str = "", *, after: str = "", limit: int = 100) -> list[Value]:
        """This contract's entries whose key starts with ``prefix``, in key order (UTF-8
        byte order), as ``[key, value]`` pairs: at most ``limit`` (1 to ``MAX_ITEMS``), with
        keys after ``after`` (pass the last key of one page to get the next)."""
        if type(limit) is not int or not 0 < limit <= MAX_ITEMS:
            raise ContractError(f"items() returns 1 to {MAX_ITEMS} entries per call")
        if len(prefix) > MAX_KEY_LENGTH or len(after) > MAX_KEY_LENGTH:
            raise ContractError(f"state keys are at most {MAX_KEY_LENGTH} characters")
        base = state_key(self.contract, "")
        self.fuel.charge(FUEL_READ)
        rows = self._reader.scan(
            base + prefix.encode(),
            base + after.encode() if after else b"",
            limit,
            lambda skipped: self.fuel.charge(FUEL_SCAN_SKIP * skipped),
        )
        out: list[Value] = []
        for key, raw in rows:
            self.fuel.charge(FUEL_READ + len(key) + len(raw))
            out.append([key[len(base) :].decode(), decode(raw)])
        return out

    def get_validators(self) -> ValidatorSet:
        """The validator set in force (read-only for every contract)."""
        raw = self._reader.get(VALIDATORS_KEY)
        self.fuel.charge(FUEL_READ + (len(raw) if raw else 0))
        if raw is None:
            raise ContractError("the state holds no validator set")
        return ValidatorSet.from_value(decode(raw))

    def get_system(self, key: bytes) -> Value:
        """A ``$sys/`` state value (read-only), or ``None``."""
        raw = self._reader.get(key)
        self.fuel.charge(FUEL_READ + (len(raw) if raw else 0))
        return None if raw is None else decode(raw)

    def get_from(self, contract: str, key: str) -> Value:
        """Read another contract's state (read-only), or ``None``."""
        raw = self._reader.get(state_key(contract, key))
        self.fuel.charge(FUEL_READ + (len(raw) if raw else 0))
        return None if raw is None else decode(raw)

    def has_role(self, role: str, address: bytes, org: str | None = None) -> bool:
        """Whether ``address`` holds ``role`` (granted in the ``organisations`` contract);
        with ``org``, only if that organisation granted it."""
        prefix = state_key("organisations", f"role/{role}/{address.hex()}/")
        self.fuel.charge(FUEL_READ)
        if org is not None:
            return self._reader.get(prefix + org.encode()) is not None
        return bool(self._reader.scan(prefix, b"", 1))

    def require(self, condition: object, message: str, code: str = "requirement_failed") -> None:
        """Fail the call with ``message`` unless ``condition`` holds."""
        if not condition:
            raise ContractError(message, code=code)

    def call_view(
        self,
        contract: str,
        method: str,
        args: dict[str, Value] | None = None,
        *,
        call_depth: int = 0,
    ) -> Value:
        """Run another contract's ``@view`` method on the same state and return its result.

        The callee reads only; it runs on this call's fuel; its arguments and result are
        copies (encoded and decoded), so no object is shared between contracts.
        ``call_depth``: the caller's nested sandbox calls, which the callee's count from.
        """
        if self._registry is None:
            raise ContractError("calls into other contracts are not available here")
        if self._depth >= MAX_VIEW_DEPTH:
            raise ContractError(
                f"read-only calls into other contracts nest at most {MAX_VIEW_DEPTH} deep",
                code="limit_exceeded",
            )
        if args is None:
            args = {}
        if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
            raise ContractError("call_view() arguments must be a dict with str keys")
        try:
            raw_args = encode(args)
        except EncodeError as exc:
            raise ContractError(f"call_view() arguments: {exc.message}") from None
        self.fuel.charge(FUEL_CALL_VIEW + len(raw_args))
        callee = self._registry.get(contract, self._reader)
        fn = callee.get_method(method, "view")
        inner = ViewContext(
            self._reader,
            contract,
            self.fuel,
            self.height,
            registry=self._registry,
            depth=self._depth + 1,
            call_depth=call_depth,
        )
        copied = decode(raw_args)
        assert isinstance(copied, dict)
        result = fn(inner, Args(copied))
        try:
            raw = encode(result)
        except EncodeError as exc:
            raise ContractError(f"{contract}.{method} returned {exc.message}") from None
        self.fuel.charge(len(raw))
        return decode(raw)


class Context(ViewContext):
    """What a transaction's call sees and may change."""

    def __init__(
        self,
        overlay: TxOverlay,
        contract: str,
        fuel: FuelMeter,
        *,
        chain_id: str,
        height: int,
        time_ms: int,
        tx_id: Hash32,
        sender: Address,
        sender_key: PublicKey,
        registry: ContractRegistry | None = None,
        scheduled: bool = False,
    ) -> None:
        super().__init__(overlay, contract, fuel, height, registry=registry)
        self._overlay = overlay
        self._schedules = 0
        #: Whether this call is a scheduled call run by the chain (then ``tx_id`` is the
        #: schedule's id and ``sender`` the account whose transaction scheduled it).
        self.scheduled = scheduled
        self.chain_id = chain_id
        #: Block time in milliseconds since the Unix epoch (the same on every node).
        self.time_ms = time_ms
        self.tx_id = tx_id
        #: Address of the account that signed the transaction.
        self.sender = sender
        self.sender_key = sender_key
        self.events: list[Event] = []

    def set(self, key: str, value: Value) -> None:
        try:
            raw = encode(value)
        except EncodeError as exc:
            raise ContractError(f"cannot store {key!r}: {exc.message}") from None
        if len(raw) > MAX_VALUE_SIZE:
            raise ContractError(f"value for {key!r} exceeds {MAX_VALUE_SIZE} bytes")
        self.fuel.charge(FUEL_WRITE + 10 * len(raw))
        self._overlay.set(self._key(key), raw)

    def delete(self, key: str) -> None:
        self.fuel.charge(FUEL_WRITE)
        self._overlay.delete(self._key(key))

    def set_system(self, key: bytes, value: Value) -> None:
        """Write a ``$sys/`` key: only the governance contract may (validators, nodes)."""
        if self.contract not in SYSTEM_WRITERS:
            raise ContractError(f"contract {self.contract!r} may not change system state")
        raw = encode(value)
        self.fuel.charge(FUEL_WRITE + 10 * len(raw))
        if value is None:
            self._overlay.delete(key)
        else:
            self._overlay.set(key, raw)

    def burn_fee(self, amount: int) -> None:
        """Burn ``amount`` of the native currency from the sender's balance (a fee); only the
        contracts in ``FEE_CHARGERS`` may. Fails with ``insufficient_funds``."""
        if self.contract not in FEE_CHARGERS:
            raise ContractError(f"contract {self.contract!r} may not charge fees")
        if amount <= 0:
            return
        balance_key = state_key("accounts", f"balance/{self.sender.hex()}")
        supply_key = state_key("accounts", "supply")
        raw = self._overlay.get(balance_key)
        balance = 0 if raw is None else decode(raw)
        supply_raw = self._overlay.get(supply_key)
        supply = 0 if supply_raw is None else decode(supply_raw)
        assert isinstance(balance, int) and isinstance(supply, int)
        self.fuel.charge(2 * FUEL_READ + 2 * FUEL_WRITE)
        if balance < amount:
            raise ContractError(
                f"the fee is {amount}, the sender's balance {balance}", code="insufficient_funds"
            )
        self._overlay.set(balance_key, encode(balance - amount))
        self._overlay.set(supply_key, encode(supply - amount))

    def schedule(
        self,
        method: str,
        args: dict[str, Value] | None = None,
        *,
        at_height: int | None = None,
        at_time_ms: int | None = None,
        fuel: int = 100_000,
    ) -> Hash32:
        """Have the chain call this contract's ``method`` later; return the schedule's id.

        Exactly one of ``at_height`` (a later block height) or ``at_time_ms`` (a later block
        time) is given. The call runs after the transactions of the first block that
        reaches it, as ``sender``, with ``fuel`` as its fuel limit and a receipt of its own.
        """
        if (at_height is None) == (at_time_ms is None):
            raise ContractError(
                "schedule() needs exactly one of at_height and at_time_ms", code="bad_argument"
            )
        if at_height is not None:
            kind, due, now = KIND_HEIGHT, at_height, self.height
        else:
            assert at_time_ms is not None
            kind, due, now = KIND_TIME, at_time_ms, self.time_ms
        if type(due) is not int or not now < due <= MAX_DUE:
            raise ContractError(
                f"schedule() at_{'height' if kind == KIND_HEIGHT else 'time_ms'} must be a "
                f"whole number after the current block's ({now})",
                code="bad_argument",
            )
        if type(fuel) is not int or not 0 < fuel <= MAX_SCHEDULED_FUEL:
            raise ContractError(
                f"schedule() fuel must be 1 to {MAX_SCHEDULED_FUEL}", code="bad_argument"
            )
        if not isinstance(method, str):
            raise ContractError("schedule() method must be a str", code="bad_argument")
        if args is None:
            args = {}
        if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
            raise ContractError("schedule() arguments must be a dict with str keys")
        try:
            raw_args = encode(args)
        except EncodeError as exc:
            raise ContractError(f"schedule() arguments: {exc.message}") from None
        if len(raw_args) > MAX_SCHEDULED_ARGS_BYTES:
            raise ContractError(
                f"schedule() arguments exceed {MAX_SCHEDULED_ARGS_BYTES} bytes",
                code="limit_exceeded",
            )
        if self.scheduled and self._schedules >= MAX_SCHEDULES_PER_SCHEDULED_CALL:
            # One call leads to at most one: waiting calls multiply only through
            # transactions, each of which pays for what it schedules.
            raise ContractError(
                f"a scheduled call may schedule at most {MAX_SCHEDULES_PER_SCHEDULED_CALL} call",
                code="limit_exceeded",
            )
        if self._schedules >= MAX_SCHEDULES_PER_CALL:
            raise ContractError(
                f"a call may schedule at most {MAX_SCHEDULES_PER_CALL} calls",
                code="limit_exceeded",
            )
        if self._registry is not None:  # the method must exist now (it is checked again later)
            self._registry.get(self.contract, self._overlay).get_method(method, "call")
        copied = decode(raw_args)
        assert isinstance(copied, dict)
        sid = schedule_id(self.tx_id, self._schedules)
        entry = ScheduledCall(
            sid,
            self.contract,
            method,
            copied,
            fuel,
            self.sender,
            self.sender_key,
            kind,
            due,
            self.height,
        )
        raw = entry.encode()
        self.fuel.charge(2 * FUEL_WRITE + 10 * len(raw))
        self._schedules += 1
        self._overlay.set(entry.due_key, raw)
        self._overlay.set(id_key(sid), entry.due_key)
        return sid

    def cancel_schedule(self, sid: bytes) -> bool:
        """Withdraw a call this contract scheduled; ``False`` if it is not waiting (it ran,
        was cancelled, or never existed)."""
        if not isinstance(sid, bytes) or len(sid) != HASH_SIZE:
            raise ContractError(
                f"cancel_schedule() needs a {HASH_SIZE}-byte schedule id", code="bad_argument"
            )
        self.fuel.charge(FUEL_READ)
        key = self._overlay.get(id_key(sid))
        if key is None:
            return False
        raw = self._overlay.get(key)
        if raw is None:
            raise ContractError("damaged schedule index in state", code="corrupted")
        if ScheduledCall.decode(raw).contract != self.contract:
            raise ContractError(
                "only the contract that scheduled a call may cancel it", code="forbidden"
            )
        self.fuel.charge(2 * FUEL_WRITE)
        self._overlay.delete(key)
        self._overlay.delete(id_key(sid))
        return True

    def emit(self, name: str, /, **data: Value) -> None:
        raw = encode(data)
        size = len(raw)
        if size > MAX_EVENT_SIZE:
            raise ContractError(f"event {name} exceeds {MAX_EVENT_SIZE} bytes")
        if len(self.events) >= MAX_EVENTS:
            raise ContractError(f"a call may emit at most {MAX_EVENTS} events")
        self.fuel.charge(FUEL_EVENT + size)
        if not all(type(value) in _SCALARS for value in data.values()):
            # The event is what was measured: a list the contract changes afterwards
            # must not change (or enlarge) it.
            decoded = decode(raw)
            assert isinstance(decoded, dict)
            data = decoded
        self.events.append(Event(self.contract, name, data, raw))


@dataclass(frozen=True, slots=True)
class Args:
    """A call's named arguments, read through typed accessors with bounds."""

    values: dict[str, Value]
    _read: set[str] = field(default_factory=set)

    def _get(self, name: str, required: bool) -> Value:
        if name not in self.values:
            if required:
                raise ContractError(f"missing argument {name!r}", code="bad_argument")
            return None
        self._read.add(name)
        return self.values[name]

    def text(self, name: str, *, max_length: int = 256, required: bool = True) -> str:
        value = self._get(name, required)
        if value is None and not required:
            return ""
        if not isinstance(value, str):
            raise ContractError(f"argument {name!r} must be a string", code="bad_argument")
        if len(value) > max_length:
            raise ContractError(
                f"argument {name!r} is longer than {max_length} characters", code="bad_argument"
            )
        return value

    def integer(self, name: str, *, minimum: int = 0, maximum: int = 2**128 - 1) -> int:
        value = self._get(name, True)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ContractError(f"argument {name!r} must be an integer", code="bad_argument")
        if not minimum <= value <= maximum:
            raise ContractError(
                f"argument {name!r} must be between {minimum} and {maximum}", code="bad_argument"
            )
        return value

    def blob(self, name: str, *, size: int) -> bytes:
        value = self._get(name, True)
        if not isinstance(value, bytes) or len(value) != size:
            raise ContractError(f"argument {name!r} must be {size} bytes", code="bad_argument")
        return value

    def blob_max(self, name: str, max_size: int) -> bytes:
        value = self._get(name, True)
        if not isinstance(value, bytes) or len(value) > max_size:
            raise ContractError(
                f"argument {name!r} must be bytes, at most {max_size}", code="bad_argument"
            )
        return value

    def addresses(self, name: str, *, max_count: int) -> list[Address]:
        """A non-empty list of distinct addresses, sorted."""
        value = self._get(name, True)
        if (
            not isinstance(value, list)
            or not 0 < len(value) <= max_count
            or not all(isinstance(a, bytes) and len(a) == ADDRESS_SIZE for a in value)
        ):
            raise ContractError(
                f"argument {name!r} must be a list of 1 to {max_count} addresses",
                code="bad_argument",
            )
        return sorted({Address(a) for a in value if isinstance(a, bytes)})

    def address(self, name: str) -> Address:
        return Address(self.blob(name, size=ADDRESS_SIZE))

    def check_no_extra(self) -> None:
        if len(self._read) == len(self.values):  # every argument read (a subset of them)
            return
        extra = sorted(set(self.values) - self._read)
        if extra:
            raise ContractError(f"unexpected argument {extra[0]!r}", code="bad_argument")


class Contract:
    """Base of every contract: dispatches to ``@call`` and ``@view`` methods."""

    name: ClassVar[str] = ""

    def get_method(self, method: str, kind: str) -> Callable[..., Value]:
        fn: Any = getattr(type(self), method, None) if not method.startswith("_") else None
        if fn is None or getattr(fn, "__civic_kind__", None) != kind:
            what = "method" if kind == "call" else "view"
            raise ContractError(
                f"contract {self.name!r} has no {what} {method!r}", code="unknown_method"
            )
        bound: Callable[..., Value] = getattr(self, method)
        return bound

    def methods(self, kind: str) -> list[str]:
        return sorted(
            n
            for n in dir(type(self))
            if not n.startswith("_")
            and getattr(getattr(type(self), n), "__civic_kind__", "") == kind
        )
