"""Generate ``tests/vectors/merkle.json``, the Merkle tree test vectors.

Run from the repository root: ``.venv/bin/python tests/vectors/generate_merkle.py``.

The vectors are computed by the small recursive implementation below, written straight
from RFC 6962 section 2.1 and independent of ``civicledger.chain.merkle``, so the vectors
check that module rather than echo it. The output is deterministic;
``tests/unit/test_merkle.py`` checks that the committed file equals what this script
produces. The format is described in ``tests/vectors/README.md``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).with_name("merkle.json")

#: Tree sizes of the generated vectors.
SIZES = (0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17)

#: The leaves of the Certificate Transparency reference tests (RFC 6962 test data).
CT_LEAVES = (
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
)

#: The published roots of the first 0..8 CT leaves (certificate-transparency
#: merkle_tree_test.cc); the script refuses to write vectors that disagree.
CT_ROOTS = (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)

#: Published audit paths in the 8-leaf CT tree: (index, path).
CT_PATHS = (
    (
        0,
        (
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        5,
        (
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
)


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 Merkle Tree Hash, recursively, exactly as the RFC states it."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 PATH(m, D[n]), recursively; the leaf's sibling comes first."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def simple_leaf(i: int) -> bytes:
    """The ``i``-th leaf of the generated vectors: the ASCII bytes ``leaf-<i>``."""
    return f"leaf-{i}".encode("ascii")


def tree_vector(name: str, leaves: list[bytes]) -> dict[str, Any]:
    return {
        "name": name,
        "leaves": [leaf.hex() for leaf in leaves],
        "root": mth(leaves).hex(),
        "proofs": [
            {
                "index": i,
                "tree_size": len(leaves),
                "path": [h.hex() for h in path(i, leaves)],
            }
            for i in range(len(leaves))
        ],
    }


def invalid_vectors(leaves: list[bytes]) -> list[dict[str, Any]]:
    """Proofs that must be rejected, each derived from a valid proof in ``leaves``."""
    n = len(leaves)
    root = mth(leaves).hex()
    good = [h.hex() for h in path(2, leaves)]
    second = bytes.fromhex(good[1])
    flipped = (bytes([second[0] ^ 0x01]) + second[1:]).hex()  # lowest bit of byte 0

    def case(reason: str, leaf: bytes, index: int, size: int, p: list[str]) -> dict[str, Any]:
        proof = {"index": index, "tree_size": size, "path": p}
        return {"reason": reason, "leaf": leaf.hex(), "root": root, "proof": proof}

    return [
        case("path element altered", leaves[2], 2, n, [good[0], flipped, *good[2:]]),
        case("wrong leaf", leaves[3], 2, n, good),
        case("wrong index", leaves[2], 3, n, good),
        case("wrong tree size", leaves[2], 2, 4, good),
        case("index out of range", leaves[2], n, n, good),
        case("path too short", leaves[2], 2, n, good[:-1]),
        case("path too long", leaves[2], 2, n, [*good, good[0]]),
        case("path elements swapped", leaves[2], 2, n, [good[1], good[0], *good[2:]]),
    ]


def build() -> dict[str, Any]:
    ct = list(CT_LEAVES)
    for size, expected in enumerate(CT_ROOTS):
        got = mth(ct[:size]).hex()
        if got != expected:
            raise SystemExit(f"CT root of size {size} is {got}, published {expected}")
    for index, expected_path in CT_PATHS:
        got_path = tuple(h.hex() for h in path(index, ct))
        if got_path != expected_path:
            raise SystemExit(f"CT path of leaf {index} is {got_path}, published {expected_path}")

    vectors = [tree_vector(f"leaf-i, size {n}", [simple_leaf(i) for i in range(n)]) for n in SIZES]
    vectors += [tree_vector(f"certificate transparency, size {n}", ct[:n]) for n in range(1, 9)]
    return {
        "description": (
            "RFC 6962 Merkle trees (SHA-256, leaf prefix 00, node prefix 01); "
            "see docs/spec/merkle.md and tests/vectors/README.md"
        ),
        "trees": vectors,
        "invalid_proofs": invalid_vectors([simple_leaf(i) for i in range(7)]),
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


def main() -> None:
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
