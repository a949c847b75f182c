"""Receipts: what executing one transaction did.

A receipt records the transaction id, whether the call succeeded, the error code and
message if not, the fuel used, the events emitted and the call's return value. Receipts of
a block are committed to by the header's ``receipts_root``. Specified in
``docs/spec/receipts.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from civicledger.encoding import TAG_LIST, Value, decode, encode
from civicledger.errors import DecodeError
from civicledger.jsonvalue import value_to_json
from civicledger.types import Hash32, parse_hash

__all__ = ["STATUS_FAILED", "STATUS_OK", "Event", "Receipt", "decode_receipt"]

STATUS_OK = 0
STATUS_FAILED = 1
#: Lists this short have a one-byte count (``docs/spec/encoding.md``).
_SHORT_LIST = 0x80
_LIST_OF_3 = bytes((TAG_LIST, 3))
_LIST_OF_7 = bytes((TAG_LIST, 7))


@dataclass(frozen=True, slots=True)
class Event:
    """A fact a contract announced while executing, e.g. ``DocumentRegistered``."""

    #: The contract that emitted it.
    contract: str
    #: The event's name.
    name: str
    #: Its data.
    data: dict[str, Value]
    #: ``encode(data)``, when the emitter measured it already.
    data_encoded: bytes = field(default=b"", compare=False, repr=False)

    def to_value(self) -> list[Value]:
        return [self.contract, self.name, self.data]

    @property
    def encoded(self) -> bytes:
        """``encode(self.to_value())``, reusing the data's encoding."""
        data = self.data_encoded or encode(self.data)
        return _LIST_OF_3 + encode(self.contract) + encode(self.name) + data

    @classmethod
    def from_value(cls, value: Value) -> Event:
        if (
            not isinstance(value, list)
            or len(value) != 3
            or not isinstance(value[0], str)
            or not isinstance(value[1], str)
            or not isinstance(value[2], dict)
        ):
            raise DecodeError("an event is a [contract, name, data] list")
        return cls(value[0], value[1], value[2])

    def to_json(self) -> dict[str, Any]:
        return {"contract": self.contract, "name": self.name, "data": value_to_json(self.data)}


@dataclass(frozen=True, slots=True)
class Receipt:
    """The outcome of one transaction."""

    #: Id of the transaction this receipt is for.
    tx_id: Hash32
    #: ``STATUS_OK`` (0) or ``STATUS_FAILED`` (1).
    status: int
    #: Machine-readable error code; empty on success.
    error_code: str
    #: Human-readable error message; empty on success.
    error_message: str
    #: Fuel the call used.
    fuel_used: int
    #: Events emitted (none on failure: they are rolled back with the writes).
    events: tuple[Event, ...]
    #: The call's return value (``None`` on failure).
    result: Value
    _encoded: bytes = field(default=b"", compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    def to_value(self) -> list[Value]:
        return [
            self.tx_id,
            self.status,
            self.error_code,
            self.error_message,
            self.fuel_used,
            [e.to_value() for e in self.events],
            self.result,
        ]

    @property
    def encoded(self) -> bytes:
        if not self._encoded:
            events = self.events
            if len(events) < _SHORT_LIST:
                # ``encode(self.to_value())``, from the events' encodings (the data of
                # each was encoded once already, to measure it).
                head = encode(
                    [self.tx_id, self.status, self.error_code, self.error_message, self.fuel_used]
                )
                raw = b"".join(
                    [
                        _LIST_OF_7,
                        head[2:],
                        bytes((TAG_LIST, len(events))),
                        *(event.encoded for event in events),
                        encode(self.result),
                    ]
                )
            else:
                raw = encode(self.to_value())
            object.__setattr__(self, "_encoded", raw)
        return self._encoded

    @classmethod
    def from_value(cls, value: Value) -> Receipt:
        if not isinstance(value, list) or len(value) != 7:
            raise DecodeError("a receipt is a list of 7 items")
        tx_id, status, code, message, fuel, events, result = value
        if not isinstance(tx_id, bytes):
            raise DecodeError("receipt tx_id must be bytes")
        if status not in (STATUS_OK, STATUS_FAILED) or isinstance(status, bool):
            raise DecodeError("receipt status must be 0 or 1")
        if not isinstance(code, str) or not isinstance(message, str):
            raise DecodeError("receipt error code and message must be strings")
        if not isinstance(fuel, int) or isinstance(fuel, bool) or fuel < 0:
            raise DecodeError("receipt fuel_used must be a non-negative integer")
        if not isinstance(events, list):
            raise DecodeError("receipt events must be a list")
        assert isinstance(status, int)
        return cls(
            tx_id=parse_hash(tx_id, "receipt tx_id"),
            status=status,
            error_code=code,
            error_message=message,
            fuel_used=fuel,
            events=tuple(Event.from_value(e) for e in events),
            result=result,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "tx_id": self.tx_id.hex(),
            "status": "ok" if self.ok else "failed",
            "error_code": self.error_code,
            "error_message": self.error_message,
            "fuel_used": self.fuel_used,
            "events": [e.to_json() for e in self.events],
            "result": value_to_json(self.result),
        }


def decode_receipt(data: bytes) -> Receipt:
    receipt = Receipt.from_value(decode(data))
    object.__setattr__(receipt, "_encoded", bytes(data))
    return receipt
