"""Every decoder either gives back what it was given or refuses it with our own error.

For each decoder of the ledger (transactions, blocks, headers, commit certificates,
validator sets, votes, proposals, receipts, Merkle and state proofs, peer messages) the
property is: decoding any byte string either returns an object whose encoding is exactly
those bytes, or raises ``DecodeError`` (``InvalidTransaction`` too where a transaction
is inside: its decoder checks names and ranges) and never anything else: no
``IndexError``, ``ValueError``, ``RecursionError``... The inputs are random bytes and
mutations of a seed corpus of valid encodings taken from a real chain (``tests/fuzzing.py``).
The saved proof files (JSON) get the same treatment field by field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.fuzzing import assert_decodes_canonically_or_raises, corpus, fuzz_bytes, mutated_json
from tests.fuzzing import fuzz_settings as fuzz

from civicledger.chain.block import (
    Block,
    ValidatorSet,
    decode_block,
    decode_commit,
    decode_header,
)
from civicledger.chain.genesis import Genesis
from civicledger.chain.merkle import InclusionProof
from civicledger.chain.proof import ReceiptProof
from civicledger.chain.receipt import decode_receipt
from civicledger.chain.transaction import decode_transaction
from civicledger.consensus.bft.messages import Proposal, SignedProposal, Vote
from civicledger.encoding import Value, decode, encode
from civicledger.errors import DecodeError, InvalidTransaction
from civicledger.jsonvalue import json_to_value, value_to_json
from civicledger.p2p.peers import decode_message
from civicledger.state.bundle import StateProofBundle
from civicledger.state.smt import StateProof

#: What a decoder may raise: our decode error, and the transaction checks where a
#: transaction is inside (``decode_transaction`` documents both).
DECODE = (DecodeError,)
DECODE_TX = (DecodeError, InvalidTransaction)


def _message_value(message: tuple[str, Value]) -> bytes:
    return encode(list(message))


def _known_block(data: bytes) -> Block:
    """``decode_block`` as a node calls it, with its mempool's transactions on hand."""
    return decode_block(data, corpus().transactions.get)


def _value_of(from_value: Callable[[Value], Any]) -> Callable[[bytes], Any]:
    return lambda data: from_value(decode(data))


def _reencode(obj: Any) -> bytes:
    return encode(obj.to_value())


#: name -> (seed kind, decoder, re-encoder, errors it may raise)
DECODERS: dict[str, tuple[str, Callable[[bytes], Any], Callable[[Any], bytes], tuple[Any, ...]]] = {
    "transaction": ("transaction", decode_transaction, _reencode, DECODE_TX),
    "block": ("block", decode_block, _reencode, DECODE_TX),
    "block with known transactions": ("block", _known_block, _reencode, DECODE_TX),
    "header": ("header", decode_header, _reencode, DECODE),
    "commit": ("commit", decode_commit, _reencode, DECODE),
    "validator set": ("validator set", _value_of(ValidatorSet.from_value), _reencode, DECODE),
    "vote": ("vote", _value_of(Vote.from_value), _reencode, DECODE),
    "proposal": ("proposal", _value_of(Proposal.from_value), _reencode, DECODE_TX),
    "signed proposal": (
        "signed proposal",
        _value_of(SignedProposal.from_value),
        _reencode,
        DECODE,
    ),
    "receipt": ("receipt", decode_receipt, _reencode, DECODE),
    "inclusion proof": ("inclusion proof", _value_of(InclusionProof.from_value), _reencode, DECODE),
    "state proof": ("state proof", _value_of(StateProof.from_value), _reencode, DECODE),
    "peer message": ("peer message", decode_message, _message_value, DECODE),
}


@pytest.mark.parametrize("name", list(DECODERS))
@fuzz(120)
@given(data=st.data())
def test_fuzz_decoder_returns_canonical_or_refuses(name: str, data: st.DataObject) -> None:
    kind, decode_fn, reencode, errors = DECODERS[name]
    raw = data.draw(fuzz_bytes(corpus().seeds[kind]), label=kind)
    assert_decodes_canonically_or_raises(decode_fn, reencode, raw, errors)


def test_fuzz_seeds_decode_to_themselves() -> None:
    """The corpus is valid: every seed decodes (the mutations start from real objects)."""
    seeds = corpus().seeds
    for name, (kind, decode_fn, reencode, _) in DECODERS.items():
        assert seeds[kind], name
        for seed in seeds[kind]:
            assert reencode(decode_fn(seed)) == seed, name


# --- Saved proof files (JSON) -------------------------------------------------------------

_BINARY_FIELDS = {
    "receipt": (
        "transaction",
        "receipt",
        "tx_proof",
        "receipt_proof",
        "header",
        "commit",
        "validators",
    ),
    "state": ("proof", "header", "commit", "validators"),
}
_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.sampled_from(["", "0x", "zz", "ab cd", "AB"])
)


@st.composite
def mutated_proof_files(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    """A saved proof with one or two fields broken: a binary field's encoding mutated (or
    its hex spelt differently), a field removed, or replaced by any JSON value."""
    files = corpus().receipt_proofs if kind == "receipt" else corpus().state_proofs
    original = draw(st.sampled_from(files))
    obj = dict(original)
    for _ in range(draw(st.integers(min_value=1, max_value=2))):
        name = draw(st.sampled_from(sorted(obj)))
        op = draw(st.sampled_from(["mutate", "mutate", "upper", "remove", "replace"]))
        if op == "mutate" and name in _BINARY_FIELDS[kind] and obj[name] == original[name]:
            obj[name] = draw(fuzz_bytes([bytes.fromhex(original[name])])).hex()
        elif op == "upper" and isinstance(obj[name], str):
            obj[name] = "0x" + obj[name].upper()
        elif op == "remove":
            del obj[name]
        else:
            obj[name] = draw(_json_scalars)
    return obj


def _check_proof_file(obj: dict[str, Any], cls: Any) -> None:
    try:
        proof = cls.from_json(obj)
    except DECODE_TX:
        return
    # What it reads back says what the file says: the same objects, the same summary.
    saved = proof.to_json()
    for key, value in saved.items():
        stated = obj[key]
        if isinstance(stated, str) and isinstance(value, str) and key not in ("format",):
            body = stated[2:] if stated[:2] in ("0x", "0X") else stated
            if key in ("contract", "key", "status"):
                assert stated == value, key
            else:
                assert bytes.fromhex(body) == bytes.fromhex(value), key
        else:
            assert stated == value and type(stated) is type(value), key
    assert json.loads(json.dumps(saved)) == saved


@fuzz(150)
@given(obj=mutated_proof_files("receipt"))
def test_fuzz_receipt_proof_file_reads_back_or_refuses(obj: dict[str, Any]) -> None:
    _check_proof_file(obj, ReceiptProof)


@fuzz(150)
@given(obj=mutated_proof_files("state"))
def test_fuzz_state_proof_file_reads_back_or_refuses(obj: dict[str, Any]) -> None:
    _check_proof_file(obj, StateProofBundle)


# --- The JSON mapping ---------------------------------------------------------------------

_json_text = st.text(st.characters(codec=None), max_size=6) | st.sampled_from(
    ["$bytes", "$map", "\ud800", "a\udfffb", "00ff", "0x00", "ab cd", "AB", "zz", ""]
)
_json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**260), max_value=2**260)
    | st.sampled_from([2**256 - 1, -(2**256) + 1, 2**256, -(2**256)])
    | st.floats()
    | _json_text
)
#: Parsed JSON as the API and the CLI see it, with what a hostile client would write.
arbitrary_json = st.recursive(
    _json_leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(_json_text, children, max_size=3)
        | st.builds(lambda v: {"$bytes": v}, children)
        | st.builds(lambda v: {"$map": v}, children)
    ),
    max_leaves=16,
)


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (``True == 1`` does not count)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


@fuzz(300)
@given(obj=arbitrary_json)
def test_fuzz_json_gives_an_encodable_value_or_refuses(obj: Any) -> None:
    try:
        value = json_to_value(obj)
    except DecodeError:
        return
    # A value has a canonical encoding, and its JSON form reads back as itself.
    decoded = decode(encode(value))
    assert _same(decoded, value)
    back = json_to_value(json.loads(json.dumps(value_to_json(value))))
    assert _same(back, value)


# --- Genesis files ------------------------------------------------------------------------


@fuzz(150)
@given(obj=st.deferred(lambda: mutated_json(corpus().genesis)))
def test_fuzz_genesis_file_reads_back_or_refuses(obj: Any) -> None:
    try:
        genesis = Genesis.from_json(obj)
    except DecodeError:
        return
    # What it reads is what it writes.
    assert Genesis.from_json(json.loads(json.dumps(genesis.to_json()))) == genesis
