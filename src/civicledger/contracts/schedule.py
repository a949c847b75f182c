"""Scheduled calls: a contract asks the chain to call one of its own methods later.

``ctx.schedule(method, args, at_height=H | at_time_ms=T, fuel=F)`` records the call in
system state; the chain runs it in the first block whose height reaches ``H`` (or whose
time reaches ``T``), after that block's transactions, with its own fuel limit and receipt
(see ``execution.executor.run_due_calls``). ``ctx.cancel_schedule(id)`` withdraws it. State
keys, all under ``$sys/schedule/`` (only the chain writes them)::

    $sys/schedule/due/h<height: 16 hex digits><id: 64 hex digits>  -> the entry
    $sys/schedule/due/t<time_ms: 16 hex digits><id: 64 hex digits> -> the entry
    $sys/schedule/id/<id: 64 hex digits>                           -> the due key

The fixed-width hex keeps the due keys in due order, so the chain finds what is due with
one ordered scan. Specified in ``docs/spec/contracts.md`` ("Scheduled calls").
"""

from __future__ import annotations

from dataclasses import dataclass

from civicledger.crypto.hashing import sha256
from civicledger.encoding import Value, decode, encode
from civicledger.errors import ContractError
from civicledger.types import Address, Hash32, PublicKey

__all__ = [
    "DUE_PREFIX",
    "MAX_SCHEDULED_ARGS_BYTES",
    "MAX_SCHEDULED_FUEL",
    "MAX_SCHEDULED_FUEL_PER_BLOCK",
    "MAX_SCHEDULED_PER_BLOCK",
    "MAX_SCHEDULES_PER_CALL",
    "MAX_SCHEDULES_PER_SCHEDULED_CALL",
    "ScheduledCall",
    "due_key",
    "id_key",
    "schedule_id",
]

DUE_PREFIX = b"$sys/schedule/due/"
ID_PREFIX = b"$sys/schedule/id/"
#: Scheduled calls one block runs at most; the rest run in the next blocks, in due order.
MAX_SCHEDULED_PER_BLOCK = 64
#: Largest fuel limit of one scheduled call.
MAX_SCHEDULED_FUEL = 1_000_000
#: Fuel limits of the scheduled calls one block runs, summed, at most (nobody pays for a
#: scheduled call, so the chain bounds the work they add to a block).
MAX_SCHEDULED_FUEL_PER_BLOCK = 20_000_000
#: Largest encoded arguments of one scheduled call.
MAX_SCHEDULED_ARGS_BYTES = 4 * 1024
#: Calls one transaction may schedule.
MAX_SCHEDULES_PER_CALL = 16
#: Calls one scheduled call may schedule (enough to recur; more would let waiting calls
#: multiply block after block with no transaction).
MAX_SCHEDULES_PER_SCHEDULED_CALL = 1
#: Greatest due height or time (ms): they must fit the 16 hex digits of the key.
MAX_DUE = 2**63 - 1

KIND_HEIGHT = "height"
KIND_TIME = "time"


def schedule_id(origin: bytes, counter: int) -> Hash32:
    """The id of the ``counter``-th call scheduled by the call whose id is ``origin``."""
    return sha256(b"civic-ledger/schedule/v1" + origin + counter.to_bytes(4, "big"))


def due_key(kind: str, due: int, sid: bytes) -> bytes:
    letter = b"h" if kind == KIND_HEIGHT else b"t"
    return DUE_PREFIX + letter + f"{due:016x}".encode() + sid.hex().encode()


def id_key(sid: bytes) -> bytes:
    return ID_PREFIX + sid.hex().encode()


@dataclass(frozen=True, slots=True)
class ScheduledCall:
    """A call waiting in system state to fall due."""

    id: Hash32
    contract: str
    method: str
    args: dict[str, Value]
    fuel: int
    #: The account whose transaction led to the scheduling; the call runs as its sender.
    sender: Address
    sender_key: PublicKey
    #: ``"height"`` or ``"time"``, and the height or block time (ms) it falls due at.
    kind: str
    due: int
    #: Height of the block that scheduled it.
    scheduled_at: int

    @property
    def due_key(self) -> bytes:
        return due_key(self.kind, self.due, self.id)

    def to_value(self) -> list[Value]:
        return [
            self.id,
            self.contract,
            self.method,
            self.args,
            self.fuel,
            self.sender,
            self.sender_key,
            self.kind,
            self.due,
            self.scheduled_at,
        ]

    def encode(self) -> bytes:
        return encode(self.to_value())

    @classmethod
    def decode(cls, raw: bytes) -> ScheduledCall:
        value = decode(raw)
        if not isinstance(value, list) or len(value) != 10:
            raise ContractError("damaged scheduled call in state", code="corrupted")
        sid, contract, method, args, fuel, sender, sender_key, kind, due, at = value
        if not (
            isinstance(sid, bytes)
            and isinstance(contract, str)
            and isinstance(method, str)
            and isinstance(args, dict)
            and type(fuel) is int
            and isinstance(sender, bytes)
            and isinstance(sender_key, bytes)
            and kind in (KIND_HEIGHT, KIND_TIME)
            and type(due) is int
            and type(at) is int
        ):
            raise ContractError("damaged scheduled call in state", code="corrupted")
        assert isinstance(kind, str)
        return cls(
            Hash32(sid),
            contract,
            method,
            args,
            fuel,
            Address(sender),
            PublicKey(sender_key),
            kind,
            due,
            at,
        )

    def to_json(self) -> dict[str, object]:
        from civicledger.jsonvalue import value_to_json

        return {
            "id": self.id.hex(),
            "contract": self.contract,
            "method": self.method,
            "args": value_to_json(self.args),
            "fuel": self.fuel,
            "sender": self.sender.hex(),
            "due": {self.kind: self.due},
            "scheduled_at": self.scheduled_at,
        }
