"""Fuzzing helpers: example counts, and strategies that turn valid encodings into inputs.

Random bytes rarely get past a decoder's first check, so most inputs are *mutations of
valid encodings* (a seed corpus each test builds): bits flipped, bytes set, inserted or
deleted, the input cut short, a length or count field changed (to its neighbours, to zero,
to a huge value, or to an over-long varint), or one value inside the decoded structure
replaced before re-encoding, which gets past the canonical encoding to the type's own
checks.

Example counts are small by default, so the suite stays quick, and the examples are
derandomized, so the suite is deterministic. ``CIVIC_FUZZ_EXAMPLES=N`` raises every fuzz
test's count to at least ``N`` and draws fresh random examples on each run: the long run
(``docs/reliability.md``, "Fuzzing").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from civicledger.chain.block import Block, Commit, Validator, ValidatorSet
from civicledger.chain.merkle import compute_inclusion_proof
from civicledger.chain.transaction import Transaction
from civicledger.consensus.bft.messages import PRECOMMIT, PREVOTE, Proposal, Vote
from civicledger.crypto.hashing import sha256
from civicledger.encoding import Value, decode, encode
from civicledger.errors import EncodeError
from civicledger.testing import CHAIN_ID, LocalChain
from civicledger.types import Hash32

__all__ = [
    "FUZZ_ENV",
    "Corpus",
    "arbitrary_values",
    "assert_decodes_canonically_or_raises",
    "corpus",
    "fuzz_bytes",
    "fuzz_examples",
    "fuzz_settings",
    "length_fields",
    "mutated_bytes",
    "mutated_json",
    "mutated_values",
]

#: The environment variable that raises every fuzz test's example count.
FUZZ_ENV = "CIVIC_FUZZ_EXAMPLES"


def fuzz_examples(default: int) -> int:
    """``default``, or the count asked for in ``CIVIC_FUZZ_EXAMPLES`` if that is larger."""
    asked = os.environ.get(FUZZ_ENV, "").strip()
    return max(default, int(asked)) if asked else default


def fuzz_settings(default: int) -> settings:
    """Settings of a fuzz test: ``default`` examples (see ``fuzz_examples``), no deadline
    (the machine is shared), derandomized unless a long run was asked for."""
    long_run = bool(os.environ.get(FUZZ_ENV, "").strip())
    return settings(
        max_examples=fuzz_examples(default),
        deadline=None,
        derandomize=not long_run,
        database=None if not long_run else settings.default.database,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
        ],
    )


# --- Arbitrary values ---------------------------------------------------------------------

_EDGE_INTS = [0, 1, -1, 127, 128, 255, 256, 2**31, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**256 - 1]
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**256) + 1, max_value=2**256 - 1)
    | st.sampled_from(_EDGE_INTS)
    | st.binary(max_size=70)
    | st.text(max_size=12)
)
#: Any value the canonical encoding can carry (small ones).
arbitrary_values: st.SearchStrategy[Value] = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


# --- Where the length fields are ----------------------------------------------------------


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    start = pos
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, pos - start


def _walk(data: bytes, pos: int, out: list[tuple[int, int]]) -> int:
    tag = data[pos]
    pos += 1
    if tag <= 0x02:  # null, false, true
        return pos
    n, size = _read_varint(data, pos)
    out.append((pos, size))
    pos += size
    if tag <= 0x06:  # integers, bytes, strings: n is a byte length
        return pos + n
    for _ in range(n * (2 if tag == 0x08 else 1)):  # list items; map keys and values
        pos = _walk(data, pos, out)
    return pos


def length_fields(data: bytes) -> list[tuple[int, int]]:
    """``(offset, size)`` of every length and count varint of a canonical encoding."""
    out: list[tuple[int, int]] = []
    _walk(data, 0, out)
    return out


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# --- Byte mutations -----------------------------------------------------------------------

_BYTE_OPS = ("flip", "set", "insert", "delete", "truncate", "length", "length", "duplicate")


@st.composite
def mutated_bytes(draw: st.DrawFn, seeds: Sequence[bytes], *, cle: bool = True) -> bytes:
    """One of ``seeds`` with one to three mutations. With ``cle`` the seeds are canonical
    encodings and their length and count fields are among the targets."""
    seed = draw(st.sampled_from(list(seeds)))
    fields = length_fields(seed) if cle and seed else []
    data = bytearray(seed)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        op = draw(st.sampled_from(_BYTE_OPS))
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
        elif op == "duplicate" and data:
            end = draw(st.integers(min_value=pos, max_value=len(data)))
            data[end:end] = data[pos:end]
        elif op == "length" and fields and len(data) == len(seed):
            # Only on the seed's own layout: after other edits the offsets are stale.
            offset, size = draw(st.sampled_from(fields))
            old, _ = _read_varint(bytes(data), offset)
            new = draw(
                st.sampled_from(
                    [
                        _uvarint(max(old - 1, 0)),
                        _uvarint(old + 1),
                        _uvarint(old + 2),
                        _uvarint(0),
                        _uvarint(2**31),
                        _uvarint(2**63 - 1),
                        _uvarint(2**63),
                        # The same number in one byte too many (not canonical).
                        bytes(b | 0x80 for b in _uvarint(old)) + b"\x00",
                    ]
                )
            )
            data[offset : offset + size] = new
            fields = []
    return bytes(data)


# --- Value mutations ----------------------------------------------------------------------


def _paths(value: Value, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    return out


def _get(value: Value, path: tuple[Any, ...]) -> Value:
    for step in path:
        value = value[step]  # type: ignore[index]
    return value


def _replace(value: Value, path: tuple[Any, ...], new: Value) -> Value:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, list):
        copy = list(value)
        copy[head] = _replace(copy[head], rest, new)
        return copy
    assert isinstance(value, dict)
    mapped = dict(value)
    mapped[head] = _replace(mapped[head], rest, new)
    return mapped


def _tweaks(value: Value) -> list[Value]:
    """Near misses of ``value``: what a decoder's range and shape checks must catch."""
    if isinstance(value, bool) or value is None:
        return [0, 1, not value, b"", "", [], {}]
    if isinstance(value, int):
        return [value - 1, value + 1, -value, -1, 0, 2**63, 2**64, 2**256 - 1, True, str(value)]
    if isinstance(value, bytes):
        return [value[:-1], value + b"\x00", b"", bytes(32), bytes(64), value.hex(), [value]]
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogatepass")
        return ["", value + "x", "x" * 65, "é", "_" + value, value.upper(), raw]
    if isinstance(value, list):
        return [
            value[:-1],
            value + value[-1:],
            value[::-1],
            [],
            [value],
            [*value, None],
            {"": value},
        ]
    if isinstance(value, dict):
        return [{}, {**value, "": None}, dict(list(value.items())[:-1]), list(value.values())]
    return [0, -value, str(value), None]  # a float, in parsed JSON


@st.composite
def mutated_values(draw: st.DrawFn, seeds: Sequence[bytes]) -> bytes:
    """The encoding of one of ``seeds`` (canonical encodings) with one or two values inside
    it replaced by a near miss or by an arbitrary value."""
    value = decode(draw(st.sampled_from(list(seeds))))
    for _ in range(draw(st.integers(min_value=1, max_value=2))):
        path = draw(st.sampled_from(_paths(value)))
        old = _get(value, path)
        new = draw(st.sampled_from(_tweaks(old)) | arbitrary_values)
        value = _replace(value, path, new)
    try:
        return encode(value)
    except EncodeError:  # nested too deep: keep the seed's depth
        return encode(decode(draw(st.sampled_from(list(seeds)))))


# --- The seed corpus ----------------------------------------------------------------------


@dataclass
class Corpus:
    """Valid encodings of every kind, from a chain with a few committed transactions."""

    seeds: dict[str, list[bytes]]
    transactions: dict[Hash32, Transaction]
    receipt_proofs: list[dict[str, Any]]
    state_proofs: list[dict[str, Any]]
    genesis: list[dict[str, Any]]


def _build_corpus() -> Corpus:
    chain = LocalChain()
    node = chain.node
    other = chain.key(7)
    chain.call("accounts", "transfer", {"to": other.address, "amount": 5})
    chain.call(
        "documents",
        "register",
        {"id": "permit-1", "sha256": sha256(b"permit"), "title": "Building permit"},
    )
    # A failing call: its receipt carries an error code and message and no events.
    chain.call("accounts", "transfer", {"to": other.address, "amount": 10**15}, key=other)
    head = node.head.height
    blocks: list[Block] = []
    commits: list[Commit] = []
    for height in range(head + 1):
        block, commit = node.get_block(height)
        blocks.append(block)
        if commit is not None:
            commits.append(commit)
    txs = [tx for block in blocks for tx in block.transactions]
    receipts = [r for height in range(1, head + 1) for r in node.get_receipts(height)]
    keys = [chain.validator, chain.key(8), chain.key(9)]
    three = ValidatorSet.of(
        [Validator(k.public_key, p) for k, p in zip(keys, (1, 2, 3), strict=False)]
    )
    block = blocks[-1]
    votes = [
        Vote.sign(chain.validator, CHAIN_ID, PREVOTE, head + 1, 0, b""),
        Vote.sign(chain.validator, CHAIN_ID, PRECOMMIT, head, 2, block.hash),
    ]
    proposals = [
        Proposal.sign(chain.validator, CHAIN_ID, head, 0, block, -1),
        Proposal.sign(chain.validator, CHAIN_ID, head, 3, blocks[1], 1),
    ]
    receipt_proofs = [node.get_receipt_proof(tx.tx_id) for tx in txs]
    state_proofs = [
        node.get_state_proof("accounts", f"balance/{other.address.hex()}"),
        node.get_state_proof("accounts", "balance/absent"),
        node.get_state_proof("documents", "doc/permit-1"),
    ]
    inclusion = [p.tx_proof for p in receipt_proofs] + [
        compute_inclusion_proof([bytes([i]) for i in range(5)], 3)
    ]
    seeds: dict[str, list[bytes]] = {
        "transaction": [tx.encoded for tx in txs],
        "block": [b.encoded for b in blocks],
        "header": [b.header.encoded for b in blocks],
        "commit": [c.encoded for c in commits],
        "validator set": [encode(node.validators.to_value()), encode(three.to_value())],
        "vote": [encode(v.to_value()) for v in votes],
        "proposal": [encode(p.to_value()) for p in proposals],
        "signed proposal": [encode(p.signed().to_value()) for p in proposals],
        "receipt": [r.encoded for r in receipts],
        "inclusion proof": [encode(p.to_value()) for p in inclusion],
        "state proof": [encode(b.proof.to_value()) for b in state_proofs],
    }
    seeds["peer message"] = [
        encode(["vote", decode(seeds["vote"][0])]),
        encode(["proposal", decode(seeds["proposal"][0])]),
        encode(["txs", seeds["transaction"][:2]]),
        encode(["status", [head, block.hash]]),
        encode(["get_blocks", [1, 64]]),
        encode(["blocks", [[blocks[1].encoded, commits[0].encoded]]]),
        encode(["evidence", [decode(s) for s in seeds["vote"]]]),
        encode(["ping", 12345]),
    ]
    return Corpus(
        seeds=seeds,
        transactions={tx.tx_id: tx for tx in txs},
        receipt_proofs=[p.to_json() for p in receipt_proofs],
        state_proofs=[b.to_json() for b in state_proofs],
        genesis=[
            node.genesis.to_json(),
            {
                **node.genesis.to_json(),
                "validators": [{"public_key": k.public_key.hex(), "power": 2} for k in keys],
                "nodes": [k.public_key.hex() for k in keys],
            },
        ],
    )


_CORPUS: list[Corpus] = []


def corpus() -> Corpus:
    """Built once per test run (a few blocks on an in-memory chain)."""
    if not _CORPUS:
        _CORPUS.append(_build_corpus())
    return _CORPUS[0]


_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.sampled_from(["", "0x", "zz", "ab cd", "AB", "\ud800"])
)


@st.composite
def mutated_json(draw: st.DrawFn, seeds: Sequence[Any]) -> Any:
    """One of ``seeds`` (parsed JSON) with one or two members or items replaced by a near
    miss or any JSON value, or removed."""
    obj = draw(st.sampled_from(list(seeds)))
    for _ in range(draw(st.integers(min_value=1, max_value=2))):
        path = draw(st.sampled_from(_paths(obj)))
        old = _get(obj, path)
        if path and draw(st.booleans()) and isinstance(_get(obj, path[:-1]), dict):
            parent = dict(_get(obj, path[:-1]))  # type: ignore[call-overload]
            del parent[path[-1]]
            obj = _replace(obj, path[:-1], parent)
            continue
        tweaks = [t for t in _tweaks(old) if not isinstance(t, bytes)]
        obj = _replace(obj, path, draw(st.sampled_from(tweaks) | _json_scalars))
    return obj


def fuzz_bytes(seeds: Sequence[bytes], *, cle: bool = True) -> st.SearchStrategy[bytes]:
    """Random bytes, mutated seeds and (for canonical encodings) seeds with values
    replaced inside them."""
    strategies = [st.binary(max_size=96), mutated_bytes(seeds, cle=cle)]
    if cle:
        strategies += [mutated_values(seeds), st.sampled_from(list(seeds))]
    return st.one_of(strategies)


def assert_decodes_canonically_or_raises(
    decode_fn: Callable[[bytes], Any],
    reencode: Callable[[Any], bytes],
    data: bytes,
    errors: tuple[type[BaseException], ...],
) -> Any:
    """Decoding ``data`` gives an object that re-encodes to exactly ``data``, or raises
    one of ``errors``; any other exception fails the test. Returns the object or None."""
    try:
        obj = decode_fn(data)
    except errors:
        return None
    assert reencode(obj) == data, f"decoded {obj!r} re-encodes to different bytes"
    return obj
