"""Tests of the canonical encoding (``civicledger.encoding``) and its JSON mapping.

The vectors (``tests/vectors/encoding.json``) were written without ``civicledger``; the
properties check that every value has exactly one encoding and that decoding any byte
string either gives back a value whose encoding is exactly those bytes or raises
``DecodeError``, and nothing else.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from tests.fuzzing import fuzz_settings

from civicledger.encoding import MAX_DEPTH, MAX_INT_BYTES, Value, decode, encode
from civicledger.errors import DecodeError, EncodeError
from civicledger.jsonvalue import json_to_value, value_to_json

VECTORS_DIR = Path(__file__).resolve().parents[1] / "vectors"
VECTORS_FILE = VECTORS_DIR / "encoding.json"

LARGEST = 2 ** (8 * MAX_INT_BYTES) - 1


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (``True == 1`` does not count)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return set(a) == set(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def depth(value: Value) -> int:
    """How many lists and maps enclose the most deeply nested value."""
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


def nest_lists(levels: int, inner: Value) -> Value:
    value = inner
    for _ in range(levels):
        value = [value]
    return value


# --- Strategies ---------------------------------------------------------------------------

ints = st.integers(min_value=-LARGEST, max_value=LARGEST)
edge_ints = st.sampled_from(
    [0, 1, -1, 127, 128, 255, 256, -256, 2**63, 2**64 - 1, 2**64, LARGEST, -LARGEST]
)
scalars = (
    st.none()
    | st.booleans()
    | ints
    | edge_ints
    | st.binary(max_size=40)
    | st.text(max_size=20)  # Hypothesis text never holds lone surrogates
)
values: st.SearchStrategy[Value] = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=25,
)


@st.composite
def mutated_encodings(draw: st.DrawFn) -> bytes:
    """The encoding of a value, then a few bytes flipped, inserted, removed or cut."""
    data = bytearray(encode(draw(values)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        pos = draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))
        byte = draw(st.integers(min_value=0, max_value=255))
        if op == "flip" and data:
            data[pos] ^= 1 << (byte % 8)
        elif op == "set" and data:
            data[pos] = byte
        elif op == "insert":
            data.insert(pos, byte)
        elif op == "delete" and data:
            del data[pos]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


def reversed_maps(value: Value) -> Value:
    """The same value with every map built in reverse insertion order."""
    if isinstance(value, list):
        return [reversed_maps(v) for v in value]
    if isinstance(value, dict):
        return {k: reversed_maps(value[k]) for k in reversed(list(value))}
    return value


# --- (a) The vectors ----------------------------------------------------------------------


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_encoding", VECTORS_DIR / "generate_encoding.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _vectors() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    return loaded


def test_vectors_file_is_up_to_date() -> None:
    assert VECTORS_FILE.read_text(encoding="utf-8") == _load_generator().render(), (
        "tests/vectors/encoding.json is stale: run tests/vectors/generate_encoding.py"
    )


def test_vectors_valid_encode_and_decode() -> None:
    cases = _vectors()["valid"]
    assert len(cases) >= 40
    for case in cases:
        value = json_to_value(case["value"])
        raw = bytes.fromhex(case["hex"])
        assert encode(value) == raw, case["name"]
        decoded = decode(raw)
        assert same(decoded, value), case["name"]
        assert value_to_json(decoded) == case["value"], case["name"]


def test_vectors_invalid_are_rejected() -> None:
    cases = _vectors()["invalid"]
    assert len(cases) >= 40
    for case in cases:
        with pytest.raises(DecodeError):
            decode(bytes.fromhex(case["hex"]))


def test_vectors_cover_every_rejection_rule() -> None:
    reasons = " ".join(case["reason"] for case in _vectors()["invalid"])
    for rule in (
        "non-minimal varint",
        "leading zero",
        "negative zero",
        "out of order",
        "repeated",
        "bad UTF-8",
        "trailing bytes",
        "unknown tag",
        "too deep",
        "33 magnitude bytes",
        "cut short",
        "runs past the end",
        "not a string",
    ):
        assert rule in reasons, rule


def test_vectors_json_invalid_are_refused() -> None:
    cases = _vectors()["json_invalid"]
    assert cases
    for case in cases:
        with pytest.raises(DecodeError):
            json_to_value(json.loads(case["json"]))


# --- (b) Round trips ----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(values)
def test_decode_inverts_encode(value: Value) -> None:
    assume(depth(value) <= MAX_DEPTH)
    raw = encode(value)
    assert same(decode(raw), value)


@settings(max_examples=100, deadline=None)
@given(values)
def test_encode_is_deterministic(value: Value) -> None:
    assume(depth(value) <= MAX_DEPTH)
    raw = encode(value)
    assert encode(value) == raw
    # Map insertion order does not matter: keys are sorted by their UTF-8 bytes.
    assert encode(reversed_maps(value)) == raw


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=4), st.integers(0, 3), min_size=2, max_size=8))
def test_map_keys_are_sorted_by_utf8_bytes(mapping: dict[str, int]) -> None:
    decoded = decode(encode(mapping))
    assert isinstance(decoded, dict)
    raw_keys = [k.encode("utf-8") for k in decoded]
    assert raw_keys == sorted(raw_keys)


@settings(max_examples=100, deadline=None)
@given(values)
def test_json_mapping_round_trip(value: Value) -> None:
    assume(depth(value) <= MAX_DEPTH)
    text = json.dumps(value_to_json(value))
    back = json_to_value(json.loads(text))
    # A map whose only key is "$bytes" reads back as bytes (see the xfail below).
    assume("$bytes" not in text)
    assert same(back, value)


# --- (c) Any bytes: a canonical value or DecodeError, nothing else -------------------------


def _decode_or_reject(data: bytes) -> None:
    try:
        value = decode(data)
    except DecodeError:
        return
    assert encode(value) == data


@fuzz_settings(500)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_canonically_or_raise(data: bytes) -> None:
    _decode_or_reject(data)


@fuzz_settings(300)
@given(mutated_encodings())
def test_mutated_encodings_decode_canonically_or_raise(data: bytes) -> None:
    _decode_or_reject(data)


def test_every_single_byte_change_of_a_value_decodes_canonically_or_raises() -> None:
    original = encode(
        {"list": [0, -1, 2**70, b"\x00\xff", "é😀", None, True, False], "map": {"": {}, "k": []}}
    )
    for pos in range(len(original)):
        for byte in range(256):
            data = bytearray(original)
            data[pos] = byte
            _decode_or_reject(bytes(data))


# --- (d) Limits and refusals ---------------------------------------------------------------


def test_integer_limits() -> None:
    assert decode(encode(LARGEST)) == LARGEST
    assert decode(encode(-LARGEST)) == -LARGEST
    for too_large in (LARGEST + 1, -(LARGEST + 1), 2**1000):
        with pytest.raises(EncodeError):
            encode(too_large)


def test_depth_limits() -> None:
    deepest_scalar = nest_lists(MAX_DEPTH, None)  # null at depth 32
    deepest_list = nest_lists(MAX_DEPTH, [])  # an empty list at depth 32
    for value in (deepest_scalar, deepest_list):
        assert same(decode(encode(value)), value)
    with pytest.raises(EncodeError):
        encode(nest_lists(MAX_DEPTH + 1, None))
    with pytest.raises(EncodeError):
        encode(nest_lists(MAX_DEPTH + 1, []))
    with pytest.raises(DecodeError):
        decode(bytes.fromhex("0701" * (MAX_DEPTH + 1) + "00"))
    deep_map: Value = None
    for _ in range(MAX_DEPTH + 1):
        deep_map = {"a": deep_map}
    with pytest.raises(EncodeError):
        encode(deep_map)


def test_huge_declared_lengths_are_refused_cheaply() -> None:
    for raw in ("05ffffffffffffffff7f", "07ffffffffffffffff7f", "08ffffffffffffffff7f"):
        with pytest.raises(DecodeError):
            decode(bytes.fromhex(raw))
    with pytest.raises(DecodeError):  # ten-byte varint
        decode(bytes.fromhex("05ffffffffffffffffff01"))


def test_decode_max_size() -> None:
    assert decode(b"\x00", max_size=1) is None
    with pytest.raises(DecodeError):
        decode(b"\x05\x01\x00", max_size=2)


def test_decode_accepts_byte_like_and_refuses_other_types() -> None:
    assert decode(bytearray(b"\x03\x01\x01")) == 1
    assert decode(memoryview(b"\x06\x01a")) == "a"
    for bad in ("00", 0, None, [0]):
        with pytest.raises(DecodeError):
            decode(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [1.5, 0.0, float("nan"), {1, 2}, object(), {1: "int key"}, {b"k": "bytes key"}, [1.0]],
    ids=repr,
)
def test_encode_refuses_values_without_an_encoding(value: Any) -> None:
    with pytest.raises(EncodeError):
        encode(value)


def test_encode_refuses_lone_surrogates_in_strings() -> None:
    with pytest.raises(EncodeError):
        encode("\ud800")
    with pytest.raises(EncodeError):
        encode(["ok", "\udfff"])


def test_encode_refuses_lone_surrogates_in_map_keys() -> None:
    with pytest.raises(EncodeError):
        encode({"\ud800": 1})


def test_tuples_encode_as_lists_and_bytearrays_as_bytes() -> None:
    assert encode((1, "a")) == encode([1, "a"])
    assert encode(bytearray(b"ab")) == encode(b"ab")
    # A memoryview of wide items is encoded by its bytes, not its item count.
    assert encode(memoryview(b"abcd").cast("H")) == encode(b"abcd")


def test_bool_is_not_an_integer() -> None:
    assert encode(True) == b"\x02"
    assert encode(1) == b"\x03\x01\x01"
    assert same(decode(b"\x02"), True)
    assert same(decode(b"\x03\x01\x01"), 1)


def test_json_mapping_of_bytes() -> None:
    assert value_to_json(b"\x00\xab") == {"$bytes": "00ab"}
    assert json_to_value({"$bytes": "00AB"}) == b"\x00\xab"
    # A map with "$bytes" and another key is an ordinary map.
    assert json_to_value({"$bytes": "00", "x": 1}) == {"$bytes": "00", "x": 1}


def test_json_mapping_of_a_map_keyed_dollar_bytes() -> None:
    for value in ({"$bytes": "00"}, {"$map": {"a": 1}}, {"$bytes": b"\x00"}):
        assert json_to_value(json.loads(json.dumps(value_to_json(value)))) == value


@given(st.integers(min_value=0, max_value=2**256 - 1))
def test_a_lone_unsigned_integer_takes_the_short_paths_with_the_same_bytes(n: int) -> None:
    # encode(n) and decode(b) answer a lone integer before the general code; inside a
    # list the general code encodes and decodes it.
    assert encode(n) == encode([n])[2:]
    assert decode(encode(n)) == n == decode(encode([n]))[0]


@pytest.mark.parametrize(
    "data",
    [b"\x03\x01\x00", b"\x03\x02\x00\x01", b"\x03\x21" + b"\x01" * 33, b"\x03\x02\x01"],
)
def test_a_lone_integer_that_is_not_canonical_is_refused(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(data)
