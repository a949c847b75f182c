"""The same transactions give the same state roots on nodes with different hash seeds."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = r'''
from civicledger.testing import LocalChain

SOURCE = """
class Tally:
    @call
    def vote(self, ctx, args):
        choice = args.text("choice", max_length=20)
        counts = ctx.get("counts", {})
        counts[choice] = counts.get(choice, 0) + 1
        ctx.set("counts", counts)
        ranking = sorted([[n, c] for c, n in counts.items()])
        ctx.emit("Voted", choice=choice, leader=ranking[-1][1])
        return len(counts)
"""

chain = LocalChain()
assert chain.deploy("tally", SOURCE).ok
for i, choice in enumerate(["b", "a", "c", "a", "d", "b", "a", "e", "c", "f"] * 3):
    receipt = chain.call("tally", "vote", {"choice": choice}, key=chain.key(3 + i % 5))
    assert receipt.ok, receipt
print(chain.node.head.state_root.hex(), chain.node.head.receipts_root.hex())
'''


def _roots(seed: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONHASHSEED": seed},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_state_roots_do_not_depend_on_the_hash_seed():
    first = _roots("1")
    assert first == _roots("2") == _roots("12345")
    assert len(first.split()) == 2
