"""Measure the state tree (not a test): bulk build, memory, batch updates, proofs.

    .venv/bin/python bench/state_smt.py --keys 1000000

Phases:

1. memory: the growth of the process RSS while ``SparseMerkleTree.from_items`` builds
   ``--keys`` pairs from a generator, then the same build under ``tracemalloc`` (what the
   tree itself retains: paths, values, nodes, the dict);
2. build time: ``from_items`` over a list of the pairs made beforehand (root included;
   the build hashes as it goes);
3. batches of ``--batch`` changes (80% overwrite, 10% insert, 10% delete), each followed
   by ``root()``: wall time per changed key, and SHA-256 calls per changed key;
4. single operations at that size: get, set + root, prove, verify.

``--ordered`` measures ``StateTree`` instead: the tree plus the ordered key index the node
keeps beside it (``state/ordered.py``).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from civicledger.state import smt
from civicledger.state.ordered import StateTree
from civicledger.state.smt import SparseMerkleTree, verify_proof


def items(n: int, value_size: int) -> Iterator[tuple[bytes, bytes]]:
    for i in range(n):
        yield b"acct/%d" % i, hashlib.sha256(b"v%d" % i).digest()[:value_size].ljust(value_size)


def rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def shape(tree: SparseMerkleTree) -> dict[str, float]:
    """Internal nodes, those with an empty side, mean and max leaf depth."""
    internal = unary = leaves = depth_sum = max_depth = 0
    stack: list[tuple[object, int]] = [(tree._root, 0)]
    while stack:
        node, depth = stack.pop()
        if node is None:
            continue
        if isinstance(node, bytes):
            leaves += 1
            depth_sum += depth
            max_depth = max(max_depth, depth)
            continue
        assert isinstance(node, smt._Node)
        internal += 1
        if node.left is None or node.right is None:
            unary += 1
        stack.append((node.left, depth + 1))
        stack.append((node.right, depth + 1))
    return {
        "internal": internal,
        "unary": unary,
        "mean_depth": depth_sum / max(leaves, 1),
        "max_depth": max_depth,
    }


class CountingSha:
    """Wrap hashlib.sha256 to count calls (installed in the module only for one phase)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, data: bytes = b"") -> hashlib._Hash:
        self.calls += 1
        return hashlib.sha256(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--value-size", type=int, default=32)
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc phase")
    parser.add_argument(
        "--ordered", action="store_true", help="measure StateTree (tree + ordered key index)"
    )
    args = parser.parse_args()
    n = args.keys
    Tree = StateTree if args.ordered else SparseMerkleTree
    print(
        f"python {sys.version.split()[0]}, {n:,} keys, {args.value_size}-byte values, "
        f"{Tree.__name__}"
    )

    # 1. memory: RSS growth for a build from a generator, then what tracemalloc sees.
    rss0 = rss_mib()
    tree = Tree.from_items(items(n, args.value_size))
    gc.collect()
    print(f"RSS growth for the tree: {rss_mib() - rss0:.0f} MiB ({rss0:.0f} MiB before)")
    root = tree.root()
    if not args.no_memory:
        del tree
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        tree = Tree.from_items(items(n, args.value_size))
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        assert tree.root() == root
        print(
            f"tracemalloc: the tree holds {held / 2**20:.0f} MiB "
            f"({held / n:.0f} bytes/key, values included)"
        )
    del tree
    gc.collect()

    # 2. build time, from a list made beforehand
    pairs = list(items(n, args.value_size))
    gc.collect()
    t0 = time.perf_counter()
    tree = Tree.from_items(pairs)
    t1 = time.perf_counter()
    assert tree.root() == root
    print(
        f"from_items: {t1 - t0:.2f} s ({(t1 - t0) / n * 1e6:.2f} µs/key), root included: "
        f"{root.hex()[:16]}…"
    )
    s = shape(tree)
    print(
        f"shape: {s['internal']:,} internal nodes ({s['unary']:,} with an empty side), "
        f"leaf depth mean {s['mean_depth']:.1f} max {s['max_depth']}"
    )
    del pairs
    gc.collect()

    # 3. batches
    rng = random.Random(7)
    live = list(range(n))  # indices of present keys (approximately: deletes are swapped out)
    fresh = n
    update_times: list[float] = []
    root_times: list[float] = []
    counter = CountingSha()
    hashes: list[int] = []
    for r in range(args.rounds):
        changes: dict[bytes, bytes | None] = {}
        while len(changes) < args.batch:
            roll = rng.random()
            if roll < 0.8:
                i = live[rng.randrange(len(live))]
                changes[b"acct/%d" % i] = b"round %d" % r
            elif roll < 0.9:
                changes[b"acct/%d" % fresh] = b"new"
                live.append(fresh)
                fresh += 1
            else:
                j = rng.randrange(len(live))
                live[j], live[-1] = live[-1], live[j]
                changes[b"acct/%d" % live.pop()] = None
        smt._sha256 = counter  # type: ignore[assignment]
        counter.calls = 0
        t0 = time.perf_counter()
        tree.update(changes)
        t1 = time.perf_counter()
        tree.root()
        t2 = time.perf_counter()
        smt._sha256 = hashlib.sha256
        hashes.append(counter.calls)
        update_times.append(t1 - t0)
        root_times.append(t2 - t1)
    # The counting wrapper adds a little to the timed rounds; time clean rounds as well.
    clean: list[float] = []
    for r in range(args.rounds):
        keys = [b"acct/%d" % live[rng.randrange(len(live))] for _ in range(args.batch)]
        changes = {k: b"clean %d" % r for k in keys}
        t0 = time.perf_counter()
        tree.update(changes)
        tree.root()
        clean.append((time.perf_counter() - t0) / len(changes))
    k = args.batch
    upd = statistics.median(update_times)
    rt = statistics.median(root_times)
    print(
        f"batch of {k} (80% overwrite/10% insert/10% delete), median of {args.rounds}: "
        f"update {upd * 1e3:.1f} ms + root {rt * 1e3:.1f} ms = "
        f"{(upd + rt) / k * 1e6:.1f} µs per changed key; "
        f"{statistics.median(hashes) / k:.1f} SHA-256 calls per changed key "
        f"(counted: keys' paths + rehash)"
    )
    print(f"batch of {k} overwrites, uncounted: {statistics.median(clean) * 1e6:.1f} µs per key")

    # 4. single operations
    probe = [b"acct/%d" % live[rng.randrange(len(live))] for _ in range(2000)]
    t0 = time.perf_counter()
    for key in probe:
        tree.get(key)
    t_get = (time.perf_counter() - t0) / len(probe)
    t0 = time.perf_counter()
    for key in probe[:500]:
        tree.set(key, b"single")
        tree.root()
    t_set = (time.perf_counter() - t0) / 500
    root = tree.root()
    t0 = time.perf_counter()
    proofs = [tree.prove(key) for key in probe[:500]]
    proofs += [tree.prove(b"absent/%d" % i) for i in range(500)]
    t_prove = (time.perf_counter() - t0) / len(proofs)
    t0 = time.perf_counter()
    for proof in proofs:
        verify_proof(root, proof)
    t_verify = (time.perf_counter() - t0) / len(proofs)
    sizes = [len(p.siblings) for p in proofs]
    print(
        f"get {t_get * 1e6:.1f} µs; set+root {t_set * 1e6:.0f} µs; prove {t_prove * 1e6:.0f} µs; "
        f"verify {t_verify * 1e6:.0f} µs; siblings per proof mean {statistics.mean(sizes):.1f} "
        f"max {max(sizes)}"
    )
    print(f"RSS now {rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
