"""The one canonical encoding (CLE) used for hashing, signing, storage and the wire.

Every value has exactly one encoding and decoding rejects every other byte string,
so ``encode(decode(b)) == b`` for every accepted ``b``. The format is specified in
``docs/spec/encoding.md``; the test vectors live in ``tests/vectors/encoding.json``.

Values are built from seven kinds only: ``None``, ``bool``, ``int`` (bounded to
256 bits of magnitude), ``bytes``, ``str``, ``list`` and ``dict`` with ``str`` keys.
There are no floats.
"""

from __future__ import annotations

from civicledger.errors import DecodeError, EncodeError

__all__ = [
    "MAX_DEPTH",
    "MAX_INT_BYTES",
    "Value",
    "decode",
    "decode_item",
    "encode",
]

Value = None | bool | int | bytes | str | list["Value"] | dict[str, "Value"]

TAG_NULL = 0x00
TAG_FALSE = 0x01
TAG_TRUE = 0x02
TAG_UINT = 0x03
TAG_NEGINT = 0x04
TAG_BYTES = 0x05
TAG_STRING = 0x06
TAG_LIST = 0x07
TAG_MAP = 0x08

#: Integers carry at most this many magnitude bytes (|x| < 2**256).
MAX_INT_BYTES = 32
#: Lists and maps nest at most this deep.
MAX_DEPTH = 32
#: Varints are at most this many bytes (lengths below 2**63).
MAX_VARINT_BYTES = 9
_UINT_LIMIT = 1 << (8 * MAX_INT_BYTES)


def _encode_uvarint(n: int, out: bytearray) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _encode_into(value: Value, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise EncodeError(f"value nests deeper than {MAX_DEPTH} levels")
    # The common exact types first, with short lengths inline: the same bytes as the
    # general path below (which handles every other case), at a fraction of the cost.
    if type(value) is bytes and len(value) < 0x80:
        out.append(TAG_BYTES)
        out.append(len(value))
        out += value
    elif type(value) is str and len(value) < 0x80 and value.isascii():
        out.append(TAG_STRING)
        out.append(len(value))
        out += value.encode("ascii")
    elif type(value) is int and 0 <= value < _UINT_LIMIT:
        size = (value.bit_length() + 7) // 8
        out.append(TAG_UINT)
        out.append(size)
        if size:
            out += value.to_bytes(size, "big")
    elif type(value) is list and len(value) < 0x80:
        out.append(TAG_LIST)
        out.append(len(value))
        for item in value:
            _encode_into(item, out, depth + 1)
    elif not (type(value) is dict and _encode_short_map(value, out, depth)):
        _encode_general(value, out, depth)


def _encode_short_map(value: dict[str, Value], out: bytearray, depth: int) -> bool:
    """Encode a map of fewer than 128 short ASCII keys (ASCII sorts as its bytes do);
    ``False``, writing nothing, for any other map."""
    if len(value) >= 0x80 or not all(
        type(key) is str and len(key) < 0x80 and key.isascii() for key in value
    ):
        return False
    out.append(TAG_MAP)
    out.append(len(value))
    for key in sorted(value):
        out.append(TAG_STRING)
        out.append(len(key))
        out += key.encode("ascii")
        _encode_into(value[key], out, depth + 1)
    return True


def _encode_general(value: Value, out: bytearray, depth: int) -> None:
    # bool before int: bool is a subclass of int in Python.
    if value is None:
        out.append(TAG_NULL)
    elif value is True:
        out.append(TAG_TRUE)
    elif value is False:
        out.append(TAG_FALSE)
    elif isinstance(value, int):
        magnitude = value if value >= 0 else -value
        raw = magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "big")
        if len(raw) > MAX_INT_BYTES:
            raise EncodeError(f"integer magnitude exceeds {MAX_INT_BYTES * 8} bits")
        out.append(TAG_UINT if value >= 0 else TAG_NEGINT)
        _encode_uvarint(len(raw), out)
        out += raw
    elif isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value)  # a memoryview's len() counts items, not bytes
        out.append(TAG_BYTES)
        _encode_uvarint(len(value), out)
        out += value
    elif isinstance(value, str):
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates
            raise EncodeError(f"string is not valid Unicode: {exc.reason}") from None
        out.append(TAG_STRING)
        _encode_uvarint(len(raw), out)
        out += raw
    elif isinstance(value, list | tuple):
        out.append(TAG_LIST)
        _encode_uvarint(len(value), out)
        for item in value:
            _encode_into(item, out, depth + 1)
    elif isinstance(value, dict):
        entries: list[tuple[bytes, Value]] = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise EncodeError(f"map keys must be strings, got {type(key).__name__}")
            try:
                entries.append((key.encode("utf-8"), item))
            except UnicodeEncodeError as exc:
                raise EncodeError(f"map key is not valid Unicode: {exc.reason}") from None
        entries.sort(key=lambda entry: entry[0])
        out.append(TAG_MAP)
        _encode_uvarint(len(entries), out)
        for raw_key, item in entries:
            out.append(TAG_STRING)
            _encode_uvarint(len(raw_key), out)
            out += raw_key
            _encode_into(item, out, depth + 1)
    else:
        raise EncodeError(f"cannot encode a value of type {type(value).__name__}")


def encode(value: Value) -> bytes:
    """Return the canonical encoding of ``value``; raise ``EncodeError`` if it has none."""
    if type(value) is int and 0 <= value < _UINT_LIMIT:
        # A state value is mostly a counter or a balance: the same bytes as below.
        size = (value.bit_length() + 7) // 8
        return bytes((TAG_UINT, size)) + value.to_bytes(size, "big")
    out = bytearray()
    _encode_into(value, out, 0)
    return bytes(out)


class _Reader:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)

    def byte(self) -> int:
        if self.pos >= self.end:
            raise DecodeError(f"input ends early at offset {self.pos}")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def uvarint(self) -> int:
        start = self.pos
        result = 0
        shift = 0
        for i in range(MAX_VARINT_BYTES):
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                # Canonical: no trailing zero group (except the single byte 0x00).
                if b == 0 and i > 0:
                    raise DecodeError(f"over-long varint at offset {start}")
                return result
            shift += 7
        raise DecodeError(f"varint longer than {MAX_VARINT_BYTES} bytes at offset {start}")

    def take(self, n: int) -> bytes:
        if n > self.end - self.pos:
            raise DecodeError(f"length {n} at offset {self.pos} runs past the end of the input")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk


def _decode_value(r: _Reader, depth: int) -> Value:
    if depth > MAX_DEPTH:
        raise DecodeError(f"value nests deeper than {MAX_DEPTH} levels")
    # Byte strings, strings, small integers and lists with a one-byte length first,
    # read in place: the same values and errors as the general path below.
    data, offset, end = r.data, r.pos, r.end
    if offset + 1 < end and data[offset + 1] < 0x80:
        tag = data[offset]
        n = data[offset + 1]
        start = offset + 2
        if tag in (TAG_BYTES, TAG_STRING):
            if n > end - start:
                raise DecodeError(f"length {n} at offset {start} runs past the end of the input")
            r.pos = start + n
            chunk = data[start : start + n]
            if tag == TAG_BYTES:
                return chunk
            try:
                return chunk.decode("utf-8")
            except UnicodeDecodeError:
                raise DecodeError(f"string at offset {offset} is not valid UTF-8") from None
        if tag == TAG_UINT and n <= MAX_INT_BYTES and start + n <= end:
            r.pos = start + n
            if n == 0:
                return 0
            if data[start] == 0:
                raise DecodeError(f"integer at offset {offset} has a leading zero byte")
            return int.from_bytes(data[start : start + n], "big")
        if tag == TAG_MAP and n <= (end - start) // 2:
            r.pos = start
            return _decode_map(r, n, depth)
        if tag == TAG_LIST:
            if n > end - start:
                raise DecodeError(f"list at offset {offset} claims {n} items, input too short")
            r.pos = start
            return [_decode_value(r, depth + 1) for _ in range(n)]
    return _decode_general(r, depth)


def _decode_map(r: _Reader, count: int, depth: int) -> dict[str, Value]:
    """The ``count`` entries of a map, keys with a one-byte length read in place."""
    data, end = r.data, r.end
    result: dict[str, Value] = {}
    previous: bytes | None = None
    for _ in range(count):
        key_offset = r.pos
        if key_offset + 1 < end and data[key_offset] == TAG_STRING and data[key_offset + 1] < 0x80:
            size = data[key_offset + 1]
            start = key_offset + 2
            if size > end - start:
                raise DecodeError(f"length {size} at offset {start} runs past the end of the input")
            raw_key = data[start : start + size]
            r.pos = start + size
        else:
            if r.byte() != TAG_STRING:
                raise DecodeError(f"map key at offset {key_offset} is not a string")
            raw_key = r.take(r.uvarint())
        # Canonical: keys strictly ascending by their UTF-8 bytes, hence unique.
        if previous is not None and raw_key <= previous:
            raise DecodeError(f"map keys out of order or repeated at offset {key_offset}")
        previous = raw_key
        try:
            key = raw_key.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError(f"map key at offset {key_offset} is not UTF-8") from None
        result[key] = _decode_value(r, depth + 1)
    return result


def _decode_general(r: _Reader, depth: int) -> Value:
    offset = r.pos
    tag = r.byte()
    if tag == TAG_NULL:
        return None
    if tag == TAG_FALSE:
        return False
    if tag == TAG_TRUE:
        return True
    if tag in (TAG_UINT, TAG_NEGINT):
        n = r.uvarint()
        if n > MAX_INT_BYTES:
            raise DecodeError(f"integer at offset {offset} exceeds {MAX_INT_BYTES * 8} bits")
        raw = r.take(n)
        if n and raw[0] == 0:
            raise DecodeError(f"integer at offset {offset} has a leading zero byte")
        magnitude = int.from_bytes(raw, "big")
        if tag == TAG_NEGINT:
            if magnitude == 0:
                raise DecodeError(f"negative zero at offset {offset}")
            return -magnitude
        return magnitude
    if tag == TAG_BYTES:
        return r.take(r.uvarint())
    if tag == TAG_STRING:
        return _decode_str(r, offset)
    if tag == TAG_LIST:
        count = r.uvarint()
        # Every item takes at least one byte: a cheap bound against huge counts.
        if count > r.end - r.pos:
            raise DecodeError(f"list at offset {offset} claims {count} items, input too short")
        return [_decode_value(r, depth + 1) for _ in range(count)]
    if tag == TAG_MAP:
        count = r.uvarint()
        if count > (r.end - r.pos) // 2:
            raise DecodeError(f"map at offset {offset} claims {count} entries, input too short")
        return _decode_map(r, count, depth)
    raise DecodeError(f"unknown tag 0x{tag:02x} at offset {offset}")


def _decode_str(r: _Reader, offset: int) -> str:
    raw = r.take(r.uvarint())
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(f"string at offset {offset} is not valid UTF-8") from None


def decode(data: bytes, *, max_size: int | None = None) -> Value:
    """Decode exactly one canonical value from ``data``; raise ``DecodeError`` otherwise."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if max_size is not None and len(data) > max_size:
        raise DecodeError(f"input of {len(data)} bytes exceeds the limit of {max_size}")
    size = len(data) - 2
    if 0 <= size <= MAX_INT_BYTES and data[0] == TAG_UINT and data[1] == size:
        # A whole input that is one unsigned integer (a counter, a balance): the same
        # value as below; a leading zero byte is left to the general path's error.
        if size == 0:
            return 0
        if data[2]:
            return int.from_bytes(data[2:], "big")
    r = _Reader(data)
    value = _decode_value(r, 0)
    if r.pos != r.end:
        raise DecodeError(f"{r.end - r.pos} trailing bytes after the value")
    return value


def decode_item(data: bytes, pos: int, depth: int) -> tuple[Value, int]:
    """The value encoded at ``data[pos:]``, nested ``depth`` levels deep in an enclosing
    value, and the position after it: what ``decode`` reads for that item (a decoder of a
    known outer shape reads the rest itself)."""
    r = _Reader(data)
    r.pos = pos
    value = _decode_value(r, depth)
    return value, r.pos
