"""User contracts in a restricted, deterministic, metered subset of Python.

``compile_contract(source, name=...)`` checks and compiles a contract's source (see
``compiler``); ``CompiledContract.instantiate()`` gives a ``Contract`` that the executor runs
like a built-in one, every step charged to the transaction's fuel (see ``runtime`` for the
guards and the fuel schedule). ``examples.COUNTER`` is a complete contract.

Contracts reach the chain through the ``contracts`` system contract (deploy, approve) and
run through ``contracts.registry`` (compiled on first use, cached by name and code hash).
"""

import sys

from civicledger.contracts.sandbox.compiler import (
    CODE_REJECTED,
    MAX_AST_DEPTH,
    MAX_AST_NODES,
    MAX_SOURCE_BYTES,
    CompiledContract,
    compile_contract,
)
from civicledger.contracts.sandbox.runtime import (
    CODE_CRASHED,
    CODE_FORBIDDEN,
    CODE_LIMIT,
    MAX_CALL_DEPTH,
    MAX_INT_BITS,
    MAX_SEQUENCE,
    MAX_VALUE_DEPTH,
    SandboxedContract,
)

#: What user contracts run on. Their results depend on the Python minor version (the
#: interpreter's integer, string and bytes operations behind the sandbox), so every node
#: of a network must run the same one; nodes refuse peers that announce another.
CONTRACT_RUNTIME = f"cpython-{sys.version_info.major}.{sys.version_info.minor}"

__all__ = [
    "CODE_CRASHED",
    "CODE_FORBIDDEN",
    "CODE_LIMIT",
    "CODE_REJECTED",
    "CONTRACT_RUNTIME",
    "MAX_AST_DEPTH",
    "MAX_AST_NODES",
    "MAX_CALL_DEPTH",
    "MAX_INT_BITS",
    "MAX_SEQUENCE",
    "MAX_SOURCE_BYTES",
    "MAX_VALUE_DEPTH",
    "CompiledContract",
    "SandboxedContract",
    "compile_contract",
]
