"""Generate ``tests/vectors/state.json``, the state tree (sparse Merkle tree) test vectors.

Run from the repository root: ``.venv/bin/python tests/vectors/generate_state.py``.

Roots and proofs are computed by the small recursive implementation below, written
straight from the definition in ``docs/spec/state.md`` and independent of
``civicledger.state.smt``, so the vectors check that module rather than echo it. Only
the ``encoded`` field of a proof uses ``civicledger.encoding`` (the canonical encoding of
the proof value). The output is deterministic; ``tests/unit/test_state_smt.py`` checks
that the committed file equals what this script produces. The format is described in
``tests/vectors/README.md``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from civicledger.encoding import Value, encode

OUTPUT = Path(__file__).with_name("state.json")
EMPTY = bytes(32)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def bit(path: bytes, depth: int) -> int:
    """Bit ``depth`` of ``path``, the most significant bit of byte 0 being bit 0."""
    return (path[depth // 8] >> (7 - depth % 8)) & 1


def leaf_hash(path: bytes, value: bytes) -> bytes:
    return sha256(b"\x00" + path + sha256(value))


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def root(entries: dict[bytes, bytes], depth: int = 0) -> bytes:
    """The definition: EMPTY, the lone leaf, or the node over the two halves."""
    if not entries:
        return EMPTY
    if len(entries) == 1:
        ((path, value),) = entries.items()
        return leaf_hash(path, value)
    left = {p: v for p, v in entries.items() if bit(p, depth) == 0}
    right = {p: v for p, v in entries.items() if bit(p, depth) == 1}
    return node_hash(root(left, depth + 1), root(right, depth + 1))


def prove(entries: dict[bytes, bytes], key: bytes) -> dict[str, Any]:
    """Walk down the key's path while the subtree has two leaves or more."""
    path = sha256(key)
    siblings: list[bytes] = []
    depth = 0
    while len(entries) >= 2:
        side = bit(path, depth)
        siblings.append(
            root({p: v for p, v in entries.items() if bit(p, depth) != side}, depth + 1)
        )
        entries = {p: v for p, v in entries.items() if bit(p, depth) == side}
        depth += 1
    value: bytes | None = None
    other_path: bytes | None = None
    other_value_hash: bytes | None = None
    if not entries:
        kind = "absent, empty subtree"
    elif path in entries:
        kind = "present"
        value = entries[path]
    else:
        kind = "absent, other leaf"
        ((other_path, other_value),) = entries.items()
        other_value_hash = sha256(other_value)
    sibling_values: list[Value] = [*siblings]
    proof_value: list[Value] = [key, value, sibling_values, other_path, other_value_hash]
    return {
        "kind": kind,
        "key": key.hex(),
        "value": None if value is None else value.hex(),
        "siblings": [s.hex() for s in siblings],
        "other_path": None if other_path is None else other_path.hex(),
        "other_value_hash": None if other_value_hash is None else other_value_hash.hex(),
        "encoded": encode(proof_value).hex(),
    }


def key(i: int) -> bytes:
    return f"key-{i}".encode("ascii")


def value(i: int) -> bytes:
    return f"value-{i}".encode("ascii")


def absent_keys(entries: dict[bytes, bytes]) -> list[bytes]:
    """The first ``absent-<i>`` keys whose proofs end on an empty subtree and on a leaf."""
    found: dict[str, bytes] = {}
    for i in range(10_000):
        candidate = f"absent-{i}".encode("ascii")
        kind = prove(entries, candidate)["kind"]
        if kind != "present" and kind not in found:
            found[kind] = candidate
        if len(found) == 2 or (len(entries) < 2 and found):
            break
    return [found[k] for k in sorted(found)]


def ground_key(prefix_of: bytes, bits: int) -> bytes:
    """The first ``ground-<i>`` key whose path shares at least ``bits`` leading bits with
    the path of ``prefix_of`` (a long chain of single-child nodes above the pair)."""
    target = int.from_bytes(sha256(prefix_of), "big") >> (256 - bits)
    i = 0
    while True:
        candidate = f"ground-{i}".encode("ascii")
        if (
            candidate != prefix_of
            and int.from_bytes(sha256(candidate), "big") >> (256 - bits) == target
        ):
            return candidate
        i += 1


Op = tuple[str, bytes, bytes | None]


def sequence(name: str, ops: list[Op], proof_keys: list[bytes] | None = None) -> dict[str, Any]:
    """Apply ``ops`` to an empty map, with the root after each; then proofs."""
    entries: dict[bytes, bytes] = {}
    steps = []
    for op, k, v in ops:
        if op == "set":
            assert v is not None
            entries[sha256(k)] = v
            steps.append(
                {"op": "set", "key": k.hex(), "value": v.hex(), "root": root(entries).hex()}
            )
        else:
            entries.pop(sha256(k), None)
            steps.append({"op": "delete", "key": k.hex(), "root": root(entries).hex()})
    present = [k for op, k, _ in ops if op == "set" and sha256(k) in entries]
    keys = proof_keys if proof_keys is not None else list(dict.fromkeys(present[:3]))
    keys = keys + absent_keys(entries)
    return {
        "name": name,
        "steps": steps,
        "size": len(entries),
        "root": root(entries).hex(),
        "proofs": [prove(entries, k) for k in keys],
    }


def sets(indices: range) -> list[Op]:
    return [("set", key(i), value(i)) for i in indices]


def invalid_vectors() -> list[dict[str, Any]]:
    """Proofs that must be rejected against the root of ``key-0 .. key-15``."""
    entries = {sha256(key(i)): value(i) for i in range(16)}
    r = root(entries).hex()
    good = prove(entries, key(3))
    absent = [prove(entries, k) for k in absent_keys(entries)]
    other = next(p for p in absent if p["kind"] == "absent, other leaf")
    empty = next(p for p in absent if p["kind"] == "absent, empty subtree")
    s0 = bytes.fromhex(good["siblings"][0])
    flipped = (bytes([s0[0] ^ 0x01]) + s0[1:]).hex()

    def case(
        reason: str, base: dict[str, Any], root_hex: str = r, **changes: Any
    ) -> dict[str, Any]:
        proof = {k: base[k] for k in ("key", "value", "siblings", "other_path", "other_value_hash")}
        proof.update(changes)
        return {"reason": reason, "root": root_hex, "proof": proof}

    own_path = sha256(bytes.fromhex(other["key"])).hex()
    far_path = bytearray(bytes.fromhex(other["other_path"]))
    far_path[0] ^= 0x80  # leaves the key's path at bit 0
    return [
        case("sibling altered", good, siblings=[flipped, *good["siblings"][1:]]),
        case("wrong value", good, value=value(4).hex()),
        case("wrong key", good, key=key(4).hex()),
        case("sibling dropped", good, siblings=good["siblings"][:-1]),
        case("sibling added", good, siblings=[*good["siblings"], EMPTY.hex()]),
        case("siblings swapped", good, siblings=good["siblings"][::-1]),
        case("wrong root", good, root_hex=root({**entries, sha256(b"extra"): b"x"}).hex()),
        case("present key claimed absent", good, value=None),
        case("absent key claimed present", empty, value=value(0).hex()),
        case("other leaf is the key's own path", other, other_path=own_path),
        case("other leaf off the key's path", other, other_path=bytes(far_path).hex()),
        case("other leaf's value hash altered", other, other_value_hash=sha256(b"?").hex()),
        case(
            "empty subtree claimed instead of the other leaf",
            other,
            other_path=None,
            other_value_hash=None,
        ),
    ]


def build() -> dict[str, Any]:
    grind = ground_key(key(0), 16)
    primitives = []
    for k, v in ((b"", b""), (key(0), value(0)), (b"\xff" * 40, b"\x00")):
        p = sha256(k)
        primitives.append(
            {
                "key": k.hex(),
                "value": v.hex(),
                "path": p.hex(),
                "value_hash": sha256(v).hex(),
                "leaf_hash": leaf_hash(p, v).hex(),
            }
        )
    sequences = [
        sequence("empty", [], proof_keys=[]),
        sequence("one key", sets(range(1))),
        sequence("two keys", sets(range(2)), proof_keys=[key(0), key(1)]),
        sequence("sixteen keys", sets(range(16)), proof_keys=[key(3), key(12)]),
        sequence(
            "overwrites and deletes",
            [
                *sets(range(10)),
                ("set", key(2), b"two, again"),
                ("set", key(5), b""),
                ("delete", key(7), None),
                ("delete", b"never-set", None),
                ("set", key(7), value(7)),
                ("delete", key(3), None),
                ("set", key(2), value(2)),
            ],
            proof_keys=[key(2), key(5), key(3)],
        ),
        sequence(
            "all deleted",
            [*sets(range(6)), *(("delete", key(i), None) for i in (4, 0, 5, 2, 1, 3))],
            proof_keys=[key(0)],
        ),
        sequence(
            "sixty-four keys",
            sets(range(64)),
            proof_keys=[key(0), key(31), key(63)],
        ),
        sequence(
            "long shared prefix",
            [*sets(range(8)), ("set", grind, b"ground")],
            proof_keys=[key(0), grind, key(1)],
        ),
    ]
    return {
        "description": (
            "Sparse Merkle state tree (SHA-256; path = SHA-256(key); "
            "leaf 00||path||SHA-256(value); node 01||left||right; empty = 32 zero bytes); "
            "see docs/spec/state.md and tests/vectors/README.md"
        ),
        "empty_root": EMPTY.hex(),
        "leaves": primitives,
        "sequences": sequences,
        "invalid_proofs": invalid_vectors(),
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


def main() -> None:
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
