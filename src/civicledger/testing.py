"""Test a contract against an in-memory chain: ``LocalChain``.

A ``LocalChain`` is a real single-validator node in a temporary folder: contracts are
deployed and approved through the same transactions as on a network, and every call is a
signed transaction in its own block, with its receipt. Used by the tests that
``civic contract new`` scaffolds and ``civic contract test`` runs::

    from civicledger.testing import LocalChain

    def test_add():
        chain = LocalChain()
        chain.deploy_file("counter", "counter.py")
        receipt = chain.call("counter", "add", {"n": 2})
        assert receipt.ok and receipt.result == 2
        assert chain.query("counter", "total") == 2
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from civicledger.chain.block import Validator, ValidatorSet
from civicledger.chain.genesis import Genesis
from civicledger.chain.receipt import Receipt
from civicledger.chain.transaction import make_transaction
from civicledger.crypto.keys import KeyPair
from civicledger.encoding import Value
from civicledger.node.node import Node

__all__ = ["LocalChain"]

CHAIN_ID = "civic-test"


class LocalChain:
    """A one-validator chain for tests; ``user`` is a funded key that signs by default."""

    def __init__(self) -> None:
        self.validator = KeyPair.from_seed(b"\x01" * 32)
        self.user = KeyPair.from_seed(b"\x02" * 32)
        self._dir = Path(tempfile.mkdtemp(prefix="civic-test-chain-"))
        atexit.register(shutil.rmtree, self._dir, True)
        genesis = Genesis(
            CHAIN_ID,
            1_700_000_000_000,
            ValidatorSet.of([Validator(self.validator.public_key, 1)]),
            issuers=(self.user.address,),
            balances=((self.user.address, 10**12),),
        )
        self.node = Node(self._dir, genesis, self.validator)
        self._time = genesis.time_ms

    def key(self, seed: int) -> KeyPair:
        """Another signer, distinct for each ``seed`` in 3..255."""
        return KeyPair.from_seed(bytes([seed]) * 32)

    def call(
        self,
        contract: str,
        method: str,
        args: dict[str, Value] | None = None,
        *,
        key: KeyPair | None = None,
        fuel_limit: int = 10_000_000,
    ) -> Receipt:
        """Sign and commit one transaction in its own block; return its receipt."""
        key = key or self.user
        tx = make_transaction(
            key,
            chain_id=CHAIN_ID,
            nonce=self.node.mempool.get_pending_nonce(key.address),
            contract=contract,
            method=method,
            args=args or {},
            fuel_limit=fuel_limit,
        )
        self.node.submit(tx.encoded)
        self._time += 1_000
        block = self.node.produce_block(self._time)
        assert block is not None
        return self.node.get_receipts(block.height)[-1]

    def advance(self, blocks: int = 1, *, ms: int = 1_000) -> list[Receipt]:
        """Commit ``blocks`` empty blocks ``ms`` apart; return the receipts of the scheduled
        calls they ran, in order."""
        receipts: list[Receipt] = []
        for _ in range(blocks):
            self._time += ms
            block = self.node.produce_block(self._time)
            assert block is not None
            receipts += self.node.get_scheduled_receipts(block.height)
        return receipts

    @property
    def height(self) -> int:
        """The height of the last committed block."""
        return self.node.head.height

    def query(self, contract: str, method: str, args: dict[str, Value] | None = None) -> Value:
        return self.node.query(contract, method, args or {})

    def deploy(self, name: str, source: str) -> Receipt:
        """Deploy contract source text as ``name`` and approve it (as the validator)."""
        deployed = self.call(
            "contracts", "deploy", {"name": name, "source": source}, fuel_limit=50_000_000
        )
        if not deployed.ok:
            return deployed
        result = deployed.result
        assert isinstance(result, dict)
        return self.call(
            "contracts",
            "approve",
            {"name": name, "version": result["version"]},
            key=self.validator,
        )

    def deploy_file(self, name: str, path: str | Path) -> Receipt:
        return self.deploy(name, Path(path).read_text(encoding="utf-8"))
