"""Checking batches of Ed25519 signatures in a helper process.

A node's verifier processes run this module (``python -m civicledger.crypto.batch``):
each reads request frames from its standard input and answers each, in order, on its
standard output. It imports nothing but the key functions, so it is ready as soon as
PyNaCl is loaded, and it ends when its input closes (the node stopped or died: nobody
else holds the pipe).

Frames (all integers big-endian)::

    request  = u32 size ‖ u32 count ‖ count × (u16 message size ‖ public key (32)
               ‖ signature (64) ‖ message)
    response = u32 count ‖ count × (1 if the signature is valid else 0)
"""

from __future__ import annotations

import os
import signal
import struct
import sys
from collections.abc import Sequence
from typing import BinaryIO

from civicledger.crypto.keys import is_valid_signature
from civicledger.types import PUBLIC_KEY_SIZE, SIGNATURE_SIZE

__all__ = [
    "MAX_FRAME",
    "check_signatures",
    "decode_request",
    "encode_request",
    "serve",
]

#: Largest request a verifier process accepts (bytes).
MAX_FRAME = 64 * 1024 * 1024
#: Largest message one item may carry (a u16 length).
MAX_MESSAGE = 0xFFFF

Triple = tuple[bytes, bytes, bytes]
_U32 = struct.Struct(">I")
_ITEM_HEAD = struct.Struct(">H")


def check_signatures(items: Sequence[Triple]) -> list[bool]:
    """``[is_valid_signature(public_key, message, signature) for each item]``."""
    return [is_valid_signature(key, message, signature) for key, message, signature in items]


def encode_request(items: Sequence[Triple]) -> bytes:
    """The request frame asking about ``items`` (public key, message, signature)."""
    parts = [b"", _U32.pack(len(items))]
    for key, message, signature in items:
        if (
            len(key) != PUBLIC_KEY_SIZE
            or len(signature) != SIGNATURE_SIZE
            or len(message) > MAX_MESSAGE
        ):
            raise ValueError("a verifier request item has a malformed key, signature or message")
        parts += [_ITEM_HEAD.pack(len(message)), key, signature, message]
    body = b"".join(parts)
    return _U32.pack(len(body)) + body


def decode_request(body: bytes) -> list[Triple]:
    """The items of a request frame's body; ``ValueError`` if it is malformed."""
    (count,) = _U32.unpack_from(body, 0)
    items: list[Triple] = []
    pos = _U32.size
    for _ in range(count):
        (size,) = _ITEM_HEAD.unpack_from(body, pos)
        pos += _ITEM_HEAD.size
        key = body[pos : pos + PUBLIC_KEY_SIZE]
        pos += PUBLIC_KEY_SIZE
        signature = body[pos : pos + SIGNATURE_SIZE]
        pos += SIGNATURE_SIZE
        message = body[pos : pos + size]
        pos += size
        if pos > len(body):
            raise ValueError("verifier request is cut short")
        items.append((key, message, signature))
    if pos != len(body):
        raise ValueError("verifier request has trailing bytes")
    return items


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """Answer request frames until ``requests`` ends (or sends a malformed frame)."""
    while True:
        head = _read_exactly(requests, _U32.size)
        if head is None:
            return
        (size,) = _U32.unpack(head)
        if size > MAX_FRAME:
            return
        body = _read_exactly(requests, size)
        if body is None:
            return
        try:
            items = decode_request(body)
        except (ValueError, struct.error):
            return
        results = check_signatures(items)
        try:
            answers.write(_U32.pack(len(results)) + bytes(results))
            answers.flush()
        except OSError:  # the node is gone (broken pipe): nobody to answer
            return


if __name__ == "__main__":
    # Ctrl-C in a terminal reaches the whole process group: the node stops, closes the
    # pipe, and this process ends with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(sys.stdin.buffer, sys.stdout.buffer)
    os._exit(0)  # nothing left to flush to a node that may be gone
