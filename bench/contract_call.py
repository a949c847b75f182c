"""Cost of one contract call: the same counter as a sandboxed user contract and natively.

Runs ``add`` through the executor (snapshot, fuel, receipt) many times on an in-memory
state, without signatures or storage, and prints microseconds per call for both.

    .venv/bin/python bench/contract_call.py --calls 5000
"""

from __future__ import annotations

import argparse
import time

from civicledger.chain.transaction import make_transaction
from civicledger.contracts.base import Args, Context, Contract, ViewContext, call, view
from civicledger.contracts.registry import ContractRegistry
from civicledger.contracts.sandbox import compile_contract
from civicledger.contracts.sandbox.examples import COUNTER
from civicledger.crypto.keys import KeyPair
from civicledger.encoding import Value
from civicledger.execution.executor import BlockEnv, execute_transactions
from civicledger.state.ordered import StateTree


class NativeCounter(Contract):
    name = "counter"

    @call
    def add(self, ctx: Context, args: Args) -> Value:
        n = args.integer("n", minimum=1, maximum=100)
        total = ctx.get_int("total") + n
        ctx.set("total", total)
        ctx.emit("Added", n=n, total=total)
        return total

    @view
    def total(self, ctx: ViewContext, args: Args) -> Value:
        return ctx.get_int("total")


def measure(contract: Contract, calls: int) -> float:
    registry = ContractRegistry([contract])
    key = KeyPair.from_seed(b"k" * 32)
    txs = [
        make_transaction(
            key, chain_id="bench", nonce=i, contract="counter", method="add", args={"n": 1}
        )
        for i in range(calls)
    ]
    state = StateTree()
    start = time.perf_counter()
    result = execute_transactions(registry, state, BlockEnv("bench", 1, 1_000), txs)
    elapsed = time.perf_counter() - start
    assert all(r.ok for r in result.receipts), result.receipts[0]
    return elapsed / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5_000)
    calls = parser.parse_args().calls
    sandboxed = compile_contract(COUNTER, name="counter").instantiate()
    native_us = measure(NativeCounter(), calls)
    sandbox_us = measure(sandboxed, calls)
    print(f"native   {native_us:7.1f} us per call")
    print(f"sandbox  {sandbox_us:7.1f} us per call  ({sandbox_us / native_us:.1f}x native)")


if __name__ == "__main__":
    main()
