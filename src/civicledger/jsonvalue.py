"""Mapping between canonical values and JSON, for the API, the CLI and saved files.

JSON has no byte strings and its numbers may be floats, so: bytes are written as
``{"$bytes": "<hex>"}``; integers are JSON integers; floats are refused. A map whose
only key is ``$bytes`` or ``$map`` is written as ``{"$map": {...}}``, so that every
value maps back to itself.
"""

from __future__ import annotations

from typing import Any

from civicledger.encoding import MAX_DEPTH, Value
from civicledger.errors import DecodeError

__all__ = ["json_to_value", "value_to_json"]


def value_to_json(value: Value) -> Any:
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, list):
        return [value_to_json(item) for item in value]
    if isinstance(value, dict):
        mapped = {key: value_to_json(item) for key, item in value.items()}
        if set(mapped) in ({"$bytes"}, {"$map"}):
            return {"$map": mapped}
        return mapped
    return value


def _text(text: str, what: str) -> str:
    # JSON can spell lone surrogates (\ud800), which no UTF-8 encoding carries.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise DecodeError(f"{what} is not valid Unicode (a lone surrogate)") from None
    return text


def json_to_value(obj: Any, *, _depth: int = 0) -> Value:
    """Convert parsed JSON into a canonical value; raise ``DecodeError`` on floats etc."""
    if _depth > MAX_DEPTH:
        raise DecodeError(f"value nests deeper than {MAX_DEPTH} levels")
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, str):
        return _text(obj, "a string")
    if isinstance(obj, int):
        if obj.bit_length() > 256:
            raise DecodeError("integers are limited to 256 bits")
        return obj
    if isinstance(obj, float):
        raise DecodeError(f"floats are not allowed (got {obj!r}); use integers")
    if isinstance(obj, list):
        return [json_to_value(item, _depth=_depth + 1) for item in obj]
    if isinstance(obj, dict):
        if set(obj) == {"$map"} and isinstance(obj["$map"], dict):
            inner = obj["$map"]
            return {
                _text(str(key), "a map key"): json_to_value(item, _depth=_depth + 1)
                for key, item in inner.items()
            }
        if set(obj) == {"$bytes"}:
            text = obj["$bytes"]
            if not isinstance(text, str):
                raise DecodeError("$bytes must be a hex string")
            try:
                return bytes.fromhex(text)
            except ValueError:
                raise DecodeError(f"$bytes is not valid hex: {text[:80]!r}") from None
        result: dict[str, Value] = {}
        for key, item in obj.items():
            if not isinstance(key, str):
                raise DecodeError("map keys must be strings")
            result[_text(key, "a map key")] = json_to_value(item, _depth=_depth + 1)
        return result
    raise DecodeError(f"cannot convert {type(obj).__name__} to a ledger value")
