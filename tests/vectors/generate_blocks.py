"""Generate ``tests/vectors/blocks.json``: validator sets, genesis, headers, commits, proofs.

Run from the repository root: ``.venv/bin/python tests/vectors/generate_blocks.py``.

Nothing here comes from ``civicledger``: values are encoded by the small independent
encoder of ``generate_encoding.py``, transactions are built and signed by
``generate_transactions.py`` (PyNaCl directly), Merkle roots and paths by the recursive
RFC 6962 definition below, and the state root of the genesis state by the recursive
definition of ``docs/spec/state.md``. Everything follows ``docs/spec/blocks.md`` and
``docs/spec/receipts.md``. The output is deterministic; ``tests/unit/test_block.py``
checks that the committed file equals what this script produces and that ``civicledger``
reproduces and accepts (or rejects) every item. The format is described in
``tests/vectors/README.md``.

Block 1 is *illustrative*: its receipts and state root were written here, not obtained by
executing its transactions, so it exercises encoding, hashing, Merkle trees and commit
signatures, not the state transition.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

OUTPUT = Path(__file__).with_name("blocks.json")

DOMAIN_BLOCK = b"civic-ledger/block/v1\x00"
DOMAIN_VOTE_SIGN = b"civic-ledger/vote/v1\x00"
PROOF_FORMAT = "civic-ledger/receipt-proof/v1"
CHAIN_ID = "civic-test"
GENESIS_TIME_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
ZERO32 = bytes(32)


def _load_sibling(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_enc = _load_sibling("generate_encoding")
_txs = _load_sibling("generate_transactions")
cle_encode = _enc.cle_encode
to_json = _enc.to_json
seed_of = _txs.seed_of
public_key = _txs.public_key
address = _txs.address
sign = _txs.sign


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# --- RFC 6962 Merkle trees (docs/spec/merkle.md), recursively ---------------------------


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return sha256(b"\x00" + leaves[0])
    k = _split(n)
    return sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def merkle_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*merkle_path(m, leaves[:k]), mth(leaves[k:])]
    return [*merkle_path(m - k, leaves[k:]), mth(leaves[:k])]


# --- The state tree (docs/spec/state.md), recursively -----------------------------------


def _bit(path: bytes, depth: int) -> int:
    return (path[depth // 8] >> (7 - depth % 8)) & 1


def _smt(entries: dict[bytes, bytes], depth: int) -> bytes:
    if not entries:
        return ZERO32
    if len(entries) == 1:
        ((path, value),) = entries.items()
        return sha256(b"\x00" + path + sha256(value))
    left = {p: v for p, v in entries.items() if _bit(p, depth) == 0}
    right = {p: v for p, v in entries.items() if _bit(p, depth) == 1}
    return sha256(b"\x01" + _smt(left, depth + 1) + _smt(right, depth + 1))


def state_root(state: dict[bytes, bytes]) -> bytes:
    return _smt({sha256(k): v for k, v in state.items()}, 0)


# --- Blocks -----------------------------------------------------------------------------


def validator_set(powers: dict[int, int]) -> list[list[Any]]:
    """``[[public_key, power], ...]`` sorted by public key, from ``{test key n: power}``."""
    return sorted([public_key(seed_of(n)), power] for n, power in powers.items())


def header_items(
    *,
    height: int,
    prev_hash: bytes,
    time_ms: int,
    proposer: bytes,
    tx_root: bytes,
    state_root: bytes,
    receipts_root: bytes,
    validator_set_hash: bytes,
) -> list[Any]:
    return [
        CHAIN_ID,
        height,
        prev_hash,
        time_ms,
        proposer,
        tx_root,
        state_root,
        receipts_root,
        validator_set_hash,
    ]


def block_hash(header: list[Any]) -> bytes:
    return sha256(DOMAIN_BLOCK + cle_encode(header))


def vote_bytes(chain_id: str, height: int, round_: int, hash_: bytes) -> bytes:
    return DOMAIN_VOTE_SIGN + cle_encode([chain_id, "precommit", height, round_, hash_])


def commit_items(
    height: int,
    round_: int,
    hash_: bytes,
    signers: list[int],
    *,
    chain_id: str = CHAIN_ID,
    signed_height: int | None = None,
    signed_round: int | None = None,
    signed_hash: bytes | None = None,
    sort: bool = True,
) -> list[Any]:
    """A commit by test keys ``signers``; the ``signed_*`` overrides make bad signatures."""
    message = vote_bytes(
        chain_id,
        height if signed_height is None else signed_height,
        round_ if signed_round is None else signed_round,
        hash_ if signed_hash is None else signed_hash,
    )
    sigs = [[public_key(seed_of(n)), sign(seed_of(n), message)] for n in signers]
    if sort:
        sigs.sort()
    return [height, round_, hash_, sigs]


GENESIS_JSON: dict[str, Any] = {
    "chain_id": CHAIN_ID,
    "genesis_time_ms": GENESIS_TIME_MS,
    "validators": [
        {"public_key": public_key(seed_of(n)).hex(), "power": power}
        for n, power in ((1, 10), (2, 20), (3, 30))
    ],
    "issuers": [address(public_key(seed_of(1))).hex()],
    "balances": [
        {"address": address(public_key(seed_of(2))).hex(), "amount": 1000},
        {"address": address(public_key(seed_of(3))).hex(), "amount": 500},
    ],
    "params": {
        "block_interval_ms": 1000,
        "empty_block_interval_ms": 10000,
        "max_block_txs": 5000,
        "max_block_bytes": 8388608,
    },
}


def genesis_state() -> dict[bytes, bytes]:
    # The validator set is state too: [[public_key, power], ...] sorted by key.
    validators = sorted(
        (bytes.fromhex(v["public_key"]), v["power"]) for v in GENESIS_JSON["validators"]
    )
    state: dict[bytes, bytes] = {b"$sys/validators": cle_encode([[k, p] for k, p in validators])}
    if GENESIS_JSON.get("nodes"):
        state[b"$sys/nodes"] = cle_encode(sorted(bytes.fromhex(k) for k in GENESIS_JSON["nodes"]))
    for issuer in GENESIS_JSON["issuers"]:
        state[f"accounts/issuer/{issuer}".encode()] = cle_encode(True)
    supply = 0
    for entry in GENESIS_JSON["balances"]:
        state[f"accounts/balance/{entry['address']}".encode()] = cle_encode(entry["amount"])
        supply += entry["amount"]
    if supply:
        state[b"accounts/supply"] = cle_encode(supply)
    return state


def _tx_fields(**fields: Any) -> dict[str, Any]:
    return {"chain_id": CHAIN_ID, "fuel_limit": 1_000_000, "expiry": 0, **fields}


def _block1_transactions() -> list[dict[str, Any]]:
    addr = {n: address(public_key(seed_of(n))) for n in (1, 2, 3)}
    return [
        _txs.signed_transaction(
            seed_of(2),
            _tx_fields(
                nonce=0,
                contract="accounts",
                method="transfer",
                args={"to": addr[3], "amount": 100},
            ),
        ),
        _txs.signed_transaction(
            seed_of(3),
            _tx_fields(
                nonce=0,
                contract="documents",
                method="register",
                args={
                    "id": "minutes-2026-01-05",
                    "sha256": sha256(b"Minutes of the council, 5 January 2026"),
                    "title": "Council minutes, 5 January 2026",
                },
            ),
        ),
        _txs.signed_transaction(
            seed_of(1),
            _tx_fields(
                nonce=0,
                contract="accounts",
                method="mint",
                args={"to": addr[1], "amount": 5},
                fuel_limit=2_000,
            ),
        ),
    ]


def _block1_receipts(txs: list[dict[str, Any]]) -> list[list[Any]]:
    addr = {n: address(public_key(seed_of(n))) for n in (1, 2, 3)}
    ids = [bytes.fromhex(tx["tx_id"]) for tx in txs]
    return [
        [
            ids[0],
            0,
            "",
            "",
            3_830,
            [["accounts", "Transferred", {"from": addr[2], "to": addr[3], "amount": 100}]],
            900,
        ],
        [
            ids[1],
            0,
            "",
            "",
            12_754,
            [
                [
                    "documents",
                    "DocumentRegistered",
                    {
                        "id": "minutes-2026-01-05",
                        "sha256": sha256(b"Minutes of the council, 5 January 2026"),
                        "version": 1,
                        "issuer": addr[3],
                    },
                ]
            ],
            1,
        ],
        [
            ids[2],
            1,
            "out_of_fuel",
            "out of fuel: the call needs more than its limit of 2000",
            2_000,
            [],
            None,
        ],
    ]


def _proof_file(
    tx: dict[str, Any],
    receipt: list[Any],
    tx_proof: list[Any],
    receipt_proof: list[Any],
    header: list[Any],
    commit: list[Any],
    validators: list[list[Any]],
) -> dict[str, Any]:
    return {
        "format": PROOF_FORMAT,
        "tx_id": tx["tx_id"],
        "height": header[1],
        "status": "ok" if receipt[1] == 0 else "failed",
        "transaction": tx["encoded"],
        "receipt": cle_encode(receipt).hex(),
        "tx_proof": cle_encode(tx_proof).hex(),
        "receipt_proof": cle_encode(receipt_proof).hex(),
        "header": cle_encode(header).hex(),
        "commit": cle_encode(commit).hex(),
        "validators": cle_encode(validators).hex(),
    }


def build() -> dict[str, Any]:
    single = validator_set({1: 1})
    three = validator_set({1: 10, 2: 20, 3: 30})
    three_hash = sha256(cle_encode(three))

    # Genesis: block 0, no transactions, no commit.
    state = genesis_state()
    g_state_root = state_root(state)
    genesis_header = header_items(
        height=0,
        prev_hash=ZERO32,
        time_ms=GENESIS_TIME_MS,
        proposer=bytes(20),
        tx_root=mth([]),
        state_root=g_state_root,
        receipts_root=mth([]),
        validator_set_hash=three_hash,
    )
    genesis_hash = block_hash(genesis_header)

    # Block 1: three transactions.
    txs = _block1_transactions()
    tx_leaves = [bytes.fromhex(tx["encoded"]) for tx in txs]
    receipts = _block1_receipts(txs)
    receipt_leaves = [cle_encode(r) for r in receipts]
    header1 = header_items(
        height=1,
        prev_hash=genesis_hash,
        time_ms=GENESIS_TIME_MS + 1_000,
        proposer=address(public_key(seed_of(2))),
        tx_root=mth(tx_leaves),
        state_root=sha256(b"illustrative state root"),
        receipts_root=mth(receipt_leaves),
        validator_set_hash=three_hash,
    )
    hash1 = block_hash(header1)
    # The body holds each transaction's own encoding as a byte string.
    block1 = [header1, [cle_encode(_enc_decode_tx(tx)) for tx in txs]]

    commit_all = commit_items(1, 0, hash1, [1, 2, 3])
    commit_23 = commit_items(1, 0, hash1, [2, 3])
    commits = [
        {"name": "all three validators (60 of 60)", "hex": cle_encode(commit_all).hex()},
        {"name": "keys 2 and 3 (50 of 60)", "hex": cle_encode(commit_23).hex()},
        {
            "name": "keys 2 and 3, round 3",
            "hex": cle_encode(commit_items(1, 3, hash1, [2, 3])).hex(),
        },
    ]
    unsorted = commit_items(1, 0, hash1, [1, 2, 3])
    unsorted[3] = list(reversed(unsorted[3]))
    duplicated = commit_items(1, 0, hash1, [2, 3])
    duplicated[3] = [duplicated[3][0], duplicated[3][0], duplicated[3][1]]
    duplicated[3].sort()
    flipped = commit_items(1, 0, hash1, [1, 2, 3])
    sig = bytearray(flipped[3][1][1])
    sig[0] ^= 0x01
    flipped[3][1][1] = bytes(sig)
    outsider_message = vote_bytes(CHAIN_ID, 1, 0, hash1)
    outsider = commit_items(1, 0, hash1, [2, 3])
    outsider[3].append([public_key(seed_of(4)), sign(seed_of(4), outsider_message)])
    outsider[3].sort()
    invalid_commits = [
        ("keys 1 and 2: 30 of 60 is not more than 2/3", commit_items(1, 0, hash1, [1, 2]), None),
        (
            "keys 1 and 3: 40 of 60 is exactly 2/3, not more",
            commit_items(1, 0, hash1, [1, 3]),
            None,
        ),
        ("no signatures", [1, 0, hash1, []], None),
        ("signatures not sorted by public key", unsorted, None),
        ("a signer appears twice", duplicated, None),
        ("a signer outside the validator set", outsider, None),
        ("one signature altered", flipped, None),
        (
            "signed for round 1, commit says round 0",
            commit_items(1, 0, hash1, [1, 2, 3], signed_round=1),
            None,
        ),
        (
            "signed for another chain id",
            commit_items(1, 0, hash1, [1, 2, 3], chain_id="civic-main"),
            None,
        ),
        ("signed without the domain tag", _untagged_commit(hash1), None),
        (
            "commit for another block (the genesis hash)",
            commit_items(1, 0, genesis_hash, [1, 2, 3]),
            None,
        ),
        ("commit for height 2", commit_items(2, 0, hash1, [1, 2, 3]), None),
        (
            "checked against a validator set the header does not name",
            commit_items(1, 0, hash1, [1]),
            single,
        ),
    ]

    # Receipt proof files for each transaction of block 1, and broken variants.
    proofs = []
    for i, tx in enumerate(txs):
        tx_proof = [i, len(txs), merkle_path(i, tx_leaves)]
        receipt_proof = [i, len(txs), merkle_path(i, receipt_leaves)]
        proofs.append(
            _proof_file(tx, receipts[i], tx_proof, receipt_proof, header1, commit_all, three)
        )
    base = proofs[0]
    path0_tx = merkle_path(0, tx_leaves)
    path0_rc = merkle_path(0, receipt_leaves)
    bad_status = list(receipts[0])
    bad_status[1] = 1
    later_header = list(header1)
    later_header[3] += 1
    invalid_proofs = [
        ("the receipt of another transaction", {"receipt": proofs[1]["receipt"]}, None),
        (
            "receipt status changed to failed",
            {"receipt": cle_encode(bad_status).hex(), "status": "failed"},
            None,
        ),
        (
            "transaction and receipt proofs for different positions",
            {"tx_proof": cle_encode([1, 3, merkle_path(1, tx_leaves)]).hex()},
            None,
        ),
        (
            "both proofs moved to index 1",
            {
                "tx_proof": cle_encode([1, 3, path0_tx]).hex(),
                "receipt_proof": cle_encode([1, 3, path0_rc]).hex(),
            },
            None,
        ),
        (
            "a path element altered",
            {"tx_proof": cle_encode([0, 3, [path0_tx[1], path0_tx[1]]]).hex()},
            None,
        ),
        (
            "header time changed: the commit is for another block",
            {"header": cle_encode(later_header).hex()},
            None,
        ),
        ("validators other than the header names", {"validators": cle_encode(single).hex()}, None),
        (
            "commit with too little power",
            {"commit": cle_encode(commit_items(1, 0, hash1, [1, 2])).hex()},
            None,
        ),
        ("transaction for another chain", _other_chain_tx(receipts[0]), None),
        ("valid, but signed by a validator set the verifier does not trust", {}, single),
    ]
    failed = proofs[2]
    summary_mismatches = [
        ("summary status says ok, the receipt failed", {**failed, "status": "ok"}),
        ("summary tx_id of another transaction", {**failed, "tx_id": proofs[0]["tx_id"]}),
        ("summary height 2, the header is at 1", {**failed, "height": 2}),
        ("summary height missing", {k: v for k, v in failed.items() if k != "height"}),
        ("format of another kind of file", {**failed, "format": "civic-ledger/other/v1"}),
        ("a field that is not hex", {**failed, "commit": "zz"}),
        ("a field missing", {k: v for k, v in failed.items() if k != "validators"}),
    ]
    tree_size_not_pinned = {
        **base,
        "tx_proof": cle_encode([0, 4, path0_tx]).hex(),
        "receipt_proof": cle_encode([0, 4, path0_rc]).hex(),
    }

    return {
        "description": (
            "Validator sets, genesis, block headers, commits and receipt proofs, "
            "docs/spec/blocks.md and docs/spec/receipts.md. Generated by "
            "tests/vectors/generate_blocks.py; do not edit by hand."
        ),
        "chain_id": CHAIN_ID,
        "domains": {"block": DOMAIN_BLOCK.hex(), "vote_sign": DOMAIN_VOTE_SIGN.hex()},
        "validator_sets": [
            {
                "name": "one validator, test key 1, power 1",
                "validators": [{"public_key": pk.hex(), "power": p} for pk, p in single],
                "encoded": cle_encode(single).hex(),
                "hash": sha256(cle_encode(single)).hex(),
            },
            {
                "name": "test keys 1, 2, 3 with powers 10, 20, 30",
                "validators": [{"public_key": pk.hex(), "power": p} for pk, p in three],
                "encoded": cle_encode(three).hex(),
                "hash": three_hash.hex(),
            },
        ],
        "genesis": {
            "file": GENESIS_JSON,
            "state": [
                {"key": k.hex(), "key_text": k.decode(), "value": v.hex()}
                for k, v in sorted(state.items())
            ],
            "state_root": g_state_root.hex(),
            "empty_root": mth([]).hex(),
            "header": _header_json(genesis_header),
            "header_encoded": cle_encode(genesis_header).hex(),
            "hash": genesis_hash.hex(),
        },
        "block1": {
            "transactions": [tx["encoded"] for tx in txs],
            "tx_ids": [tx["tx_id"] for tx in txs],
            "receipts": [leaf.hex() for leaf in receipt_leaves],
            "header": _header_json(header1),
            "header_encoded": cle_encode(header1).hex(),
            "hash": hash1.hex(),
            "block_encoded": cle_encode(block1).hex(),
            "vote": {
                "height": 1,
                "round": 0,
                "signing_bytes": vote_bytes(CHAIN_ID, 1, 0, hash1).hex(),
            },
            "commits": commits,
            "invalid_commits": [
                {
                    "reason": reason,
                    "hex": cle_encode(commit).hex(),
                    **({"validators": cle_encode(vs).hex()} if vs is not None else {}),
                }
                for reason, commit, vs in invalid_commits
            ],
        },
        "receipt_proofs": proofs,
        "invalid_receipt_proofs": [
            {
                "reason": reason,
                "proof": {**base, **changes},
                **({"trusted_validators": cle_encode(vs).hex()} if vs is not None else {}),
            }
            for reason, changes, vs in invalid_proofs
        ],
        "malformed_receipt_proofs": [
            {"reason": reason, "proof": proof} for reason, proof in summary_mismatches
        ],
        "tree_size_not_pinned": tree_size_not_pinned,
    }


def _enc_decode_tx(tx: dict[str, Any]) -> list[Any]:
    """The 9 items of a generated transaction."""
    fields = tx["fields"]
    return [
        fields["chain_id"],
        bytes.fromhex(tx["sender"]),
        fields["nonce"],
        fields["contract"],
        fields["method"],
        _from_json(fields["args"]),
        fields["fuel_limit"],
        fields["expiry"],
        bytes.fromhex(tx["signature"]),
    ]


def _from_json(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"$bytes"}:
            return bytes.fromhex(obj["$bytes"])
        return {k: _from_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_json(v) for v in obj]
    return obj


def _header_json(header: list[Any]) -> dict[str, Any]:
    names = (
        "chain_id",
        "height",
        "prev_hash",
        "time_ms",
        "proposer",
        "tx_root",
        "state_root",
        "receipts_root",
        "validator_set_hash",
    )
    return {n: v.hex() if isinstance(v, bytes) else v for n, v in zip(names, header, strict=True)}


def _untagged_commit(hash_: bytes) -> list[Any]:
    message = cle_encode([CHAIN_ID, "precommit", 1, 0, hash_])
    sigs = sorted([public_key(seed_of(n)), sign(seed_of(n), message)] for n in (1, 2, 3))
    return [1, 0, hash_, sigs]


def _other_chain_tx(receipt: list[Any]) -> dict[str, Any]:
    """A transaction for another chain, with a receipt naming it (the rest unchanged)."""
    tx = _txs.signed_transaction(
        seed_of(2),
        _tx_fields(
            chain_id="civic-main",
            nonce=0,
            contract="accounts",
            method="transfer",
            args={"to": address(public_key(seed_of(3))), "amount": 100},
        ),
    )
    return {
        "tx_id": tx["tx_id"],
        "transaction": tx["encoded"],
        "receipt": cle_encode([bytes.fromhex(tx["tx_id"]), *receipt[1:]]).hex(),
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    OUTPUT.write_text(render(), encoding="utf-8")


if __name__ == "__main__":
    main()
