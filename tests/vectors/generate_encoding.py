"""Generate ``tests/vectors/encoding.json``, the canonical encoding (CLE) test vectors.

Run from the repository root: ``.venv/bin/python tests/vectors/generate_encoding.py``.

Nothing here comes from ``civicledger``. The expected bytes of the hand-written cases are
written out by hand below, and the script checks them against ``cle_encode``, a tiny
encoder written straight from ``docs/spec/encoding.md``; a disagreement stops the script.
Longer cases (long strings, deep nesting) are computed by that tiny encoder. So the
vectors check ``civicledger.encoding`` rather than echo it. The output is deterministic;
``tests/unit/test_encoding.py`` checks that the committed file equals what this script
produces. The format is described in ``tests/vectors/README.md``.

``cle_encode`` and ``to_json`` are also used by ``generate_transactions.py`` and
``generate_blocks.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).with_name("encoding.json")

MAX_INT_BYTES = 32
MAX_DEPTH = 32


# --- An independent, minimal CLE encoder ------------------------------------------------


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _length_prefixed(tag: int, raw: bytes) -> bytes:
    return bytes([tag]) + _uvarint(len(raw)) + raw


def cle_encode(value: Any, depth: int = 0) -> bytes:
    """The canonical encoding of ``value`` (None, bool, int, bytes, str, list, dict)."""
    assert depth <= MAX_DEPTH, "too deep"
    if value is None:
        return b"\x00"
    if value is False:
        return b"\x01"
    if value is True:
        return b"\x02"
    if isinstance(value, int):
        magnitude = abs(value)
        raw = magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "big")
        assert len(raw) <= MAX_INT_BYTES, "integer too large"
        return _length_prefixed(0x03 if value >= 0 else 0x04, raw)
    if isinstance(value, bytes):
        return _length_prefixed(0x05, value)
    if isinstance(value, str):
        return _length_prefixed(0x06, value.encode("utf-8"))
    if isinstance(value, list):
        return b"\x07" + _uvarint(len(value)) + b"".join(cle_encode(v, depth + 1) for v in value)
    if isinstance(value, dict):
        items = sorted((k.encode("utf-8"), v) for k, v in value.items())
        body = b"".join(_length_prefixed(0x06, k) + cle_encode(v, depth + 1) for k, v in items)
        return b"\x08" + _uvarint(len(items)) + body
    raise TypeError(type(value).__name__)


def to_json(value: Any) -> Any:
    """The JSON mapping of a value: bytes become ``{"$bytes": "<hex>"}``."""
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def _nest_lists(levels: int, inner: Any) -> Any:
    value = inner
    for _ in range(levels):
        value = [value]
    return value


def _nest_maps(levels: int, inner: Any) -> Any:
    value = inner
    for _ in range(levels):
        value = {"a": value}
    return value


# --- Valid values, with their encodings written by hand ----------------------------------

FF32 = "ff" * 32

#: (name, value, expected hex written by hand; spaces are for reading only).
HAND_WRITTEN: list[tuple[str, Any, str]] = [
    ("null", None, "00"),
    ("false", False, "01"),
    ("true", True, "02"),
    ("integer 0 (no magnitude bytes)", 0, "03 00"),
    ("integer 1", 1, "03 01 01"),
    ("integer 127", 127, "03 01 7f"),
    ("integer 128", 128, "03 01 80"),
    ("integer 255", 255, "03 01 ff"),
    ("integer 256", 256, "03 02 0100"),
    ("integer 65535", 65535, "03 02 ffff"),
    ("integer 65536", 65536, "03 03 010000"),
    ("integer -1", -1, "04 01 01"),
    ("integer -255", -255, "04 01 ff"),
    ("integer -256", -256, "04 02 0100"),
    ("integer 2^63", 2**63, "03 08 8000000000000000"),
    ("integer 2^64 - 1", 2**64 - 1, "03 08 ffffffffffffffff"),
    ("integer 2^64", 2**64, "03 09 010000000000000000"),
    ("integer 2^255", 2**255, "03 20 80" + "00" * 31),
    ("integer 2^256 - 1 (largest)", 2**256 - 1, "03 20" + FF32),
    ("integer -(2^256 - 1) (smallest)", -(2**256 - 1), "04 20" + FF32),
    ("bytes, empty", b"", "05 00"),
    ("bytes 00", b"\x00", "05 01 00"),
    ("bytes 00 01 ff", b"\x00\x01\xff", "05 03 0001ff"),
    ("bytes, 128 of them (two-byte length)", b"\xab" * 128, "05 8001" + "ab" * 128),
    ("string, empty", "", "06 00"),
    ("string a", "a", "06 01 61"),
    ("string civic", "civic", "06 05 6369766963"),
    ("string with NUL", "a\x00b", "06 03 610062"),
    ("string é (2 UTF-8 bytes)", "é", "06 02 c3a9"),
    ("string € (3 UTF-8 bytes)", "€", "06 03 e282ac"),
    ("string 😀 (4 UTF-8 bytes)", "😀", "06 04 f09f9880"),
    ("list, empty", [], "07 00"),
    ("list [null]", [None], "07 01 00"),
    ("list [true, false, null]", [True, False, None], "07 03 02 01 00"),
    ("list [1, 'a', bytes 01]", [1, "a", b"\x01"], "07 03 030101 060161 050101"),
    ("list [[]]", [[]], "07 01 0700"),
    ("list [-1, 0, 1]", [-1, 0, 1], "07 03 040101 0300 030101"),
    ("map, empty", {}, "08 00"),
    ("map {a: 1}", {"a": 1}, "08 01 060161 030101"),
    ("map {'': null} (empty key)", {"": None}, "08 01 0600 00"),
    (
        "map written {b: 1, a: 2}: keys sorted",
        {"b": 1, "a": 2},
        "08 02 060161 030102 060162 030101",
    ),
    (
        "map {b, ab, a}: a prefix sorts first",
        {"b": 3, "ab": 2, "a": 1},
        "08 03 060161 030101 06026162 030102 060162 030103",
    ),
    (
        "map {a, Z}: upper case before lower case",
        {"a": 2, "Z": 1},
        "08 02 06015a 030101 060161 030102",
    ),
    (
        "map {😀, U+FFFF}: UTF-8 byte order, not UTF-16 order",
        {"😀": 2, "\uffff": 1},
        "08 02 0603efbfbf 030101 0604f09f9880 030102",
    ),
    (
        "map with a list and a nested map",
        {"list": [1, {"x": b"\xff"}], "n": None},
        "08 02 06046c697374 07 02 030101 08 01 060178 0501ff 06016e 00",
    ),
    (
        "a transfer's arguments",
        {"to": bytes(range(20)), "amount": 250},
        "08 02 0606616d6f756e74 0301fa 0602746f 0514 000102030405060708090a0b0c0d0e0f10111213",
    ),
]

#: (name, value): longer cases, expected bytes from ``cle_encode``.
COMPUTED: list[tuple[str, Any]] = [
    ("string of 300 x (length varint ac 02)", "x" * 300),
    ("bytes of 16384 zeros (length varint 80 80 01)", bytes(16384)),
    ("32 nested lists around null (deepest allowed)", _nest_lists(32, None)),
    ("33 nested lists, the innermost empty (deepest allowed)", _nest_lists(32, [])),
    ("32 nested maps around null (deepest allowed)", _nest_maps(32, None)),
]

# --- Invalid encodings ------------------------------------------------------------------

#: (reason, hex): every one must be rejected by a decoder.
INVALID: list[tuple[str, str]] = [
    ("empty input", ""),
    ("unknown tag 0x09", "09"),
    ("unknown tag 0xff", "ff"),
    ("unknown tag 0x0a inside a list", "07 01 0a"),
    ("trailing bytes: a second null", "00 00"),
    ("trailing bytes after an integer", "03 01 01 00"),
    ("trailing bytes after a complete list", "07 00 00"),
    ("non-minimal varint: length 0 written 80 00", "05 80 00"),
    ("non-minimal varint: length 1 written 81 00", "06 81 00 61"),
    ("non-minimal varint: list count 1 written 81 00", "07 81 00 00"),
    ("non-minimal varint: map count 0 written 80 80 00", "08 80 80 00"),
    ("non-minimal varint: integer length written 81 00", "03 81 00 01"),
    ("varint longer than 9 bytes", "05 ffffffffffffffffff 01"),
    ("varint cut short", "05 80"),
    ("length varint 2^63 - 1 runs past the end", "05 ffffffffffffffff7f 00"),
    ("bytes length runs past the end", "05 02 61"),
    ("string length runs past the end", "06 05 616263"),
    ("integer without its length", "03"),
    ("integer magnitude cut short", "03 02 01"),
    ("leading zero byte in a positive integer", "03 02 0001"),
    ("zero written with one zero byte", "03 01 00"),
    ("leading zero byte in a negative integer", "04 02 0001"),
    ("negative zero", "04 00"),
    ("negative zero written with one zero byte", "04 01 00"),
    ("integer of 33 magnitude bytes", "03 21 01" + "00" * 32),
    ("negative integer of 33 magnitude bytes", "04 21 01" + "00" * 32),
    ("integer length 33 announced, no data", "03 21"),
    ("bad UTF-8: lone continuation byte", "06 01 80"),
    ("bad UTF-8: byte ff", "06 01 ff"),
    ("bad UTF-8: overlong NUL c0 80", "06 02 c080"),
    ("bad UTF-8: overlong slash e0 80 af", "06 03 e080af"),
    ("bad UTF-8: surrogate U+D800 (ed a0 80)", "06 03 eda080"),
    ("bad UTF-8: above U+10FFFF (f4 90 80 80)", "06 04 f4908080"),
    ("bad UTF-8: sequence cut short by the length", "06 02 e282"),
    ("map keys out of order", "08 02 060162 00 060161 00"),
    ("map key repeated", "08 02 060161 00 060161 01"),
    ("map key 'ab' before its prefix 'a'", "08 02 06026162 00 060161 00"),
    ("map keys in UTF-16 order (😀 before U+FFFF)", "08 02 0604f09f9880 00 0603efbfbf 00"),
    ("map key is bytes, not a string", "08 01 050161 00"),
    ("map key is an integer", "08 01 030101 00"),
    ("map key is null", "08 01 00 00"),
    ("map key is not UTF-8", "08 01 0601ff 00"),
    ("map entry without its value", "08 01 060161"),
    ("map count 1 with nothing after it", "08 01"),
    ("list cut short", "07 02 00"),
    ("list count far above the input size", "07 ffffffff0f 00"),
    ("map count far above the input size", "08 ffffffff0f 00"),
    ("too deep: 34 nested lists", "0701" * 33 + "0700"),
    ("too deep: null inside 33 nested maps", "08 01 060161" * 33 + "00"),
]

#: (reason, JSON text): the JSON mapping refuses these.
JSON_INVALID: list[tuple[str, str]] = [
    ("a float", "1.5"),
    ("a float with an integral value", "2.0"),
    ("a float in exponent notation", "1e3"),
    ("a float inside a list", "[1, 2.5]"),
    ("an integer of 257 bits", str(2**256)),
    ("a negative integer of 257 bits", str(-(2**256))),
    ("$bytes that is not hex", '{"$bytes": "zz"}'),
    ("$bytes with an odd number of digits", '{"$bytes": "abc"}'),
    ("$bytes that is not a string", '{"$bytes": 5}'),
    ("33 nested arrays around null", "[" * 33 + "null" + "]" * 33),
    ("a string with a lone surrogate", '"a\\ud800"'),
    ("a member name with a lone surrogate", '{"\\udfff": 1}'),
]


def _clean(text: str) -> str:
    return text.replace(" ", "")


def build() -> dict[str, Any]:
    valid = []
    for name, value, written in HAND_WRITTEN:
        expected = _clean(written)
        computed = cle_encode(value).hex()
        if computed != expected:
            raise SystemExit(f"hand-written encoding of {name!r} disagrees: {computed}")
        valid.append({"name": name, "value": to_json(value), "hex": expected})
    for name, value in COMPUTED:
        valid.append({"name": name, "value": to_json(value), "hex": cle_encode(value).hex()})
    invalid = [{"reason": reason, "hex": _clean(text)} for reason, text in INVALID]
    return {
        "description": (
            "Canonical encoding (CLE) vectors, docs/spec/encoding.md. Generated by "
            "tests/vectors/generate_encoding.py; do not edit by hand."
        ),
        "valid": valid,
        "invalid": invalid,
        "json_invalid": [{"reason": reason, "json": text} for reason, text in JSON_INVALID],
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    OUTPUT.write_text(render(), encoding="utf-8")


if __name__ == "__main__":
    main()
