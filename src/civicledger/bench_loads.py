"""The load kinds of ``civic bench``: what each pre-signed transaction does.

``transfer``: a native transfer (``accounts.transfer`` of 1 unit to one recipient).
``document``: a document registration (``documents.register``, a new id and SHA-256 each).
``contract``: a call of a sandboxed user contract (``add`` of the example counter,
``contracts.sandbox.examples.COUNTER``), deployed and approved before the timed phase
through the same workflow as ``civic contract deploy`` and ``civic contract approve``.

Every transaction is built and signed before the timed phase (``presign``), so the load
generator only sends bytes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from civicledger.chain.transaction import Transaction, make_transaction
from civicledger.client import ApiError, Client
from civicledger.contracts.sandbox.examples import COUNTER
from civicledger.crypto.keys import KeyPair
from civicledger.crypto.keystore import Keystore
from civicledger.encoding import Value
from civicledger.node.localnet import LOCALNET_CHAIN_ID
from civicledger.types import Address

__all__ = [
    "BENCH_CONTRACT",
    "LOAD_KINDS",
    "LOAD_TITLES",
    "LoadKind",
    "deploy_bench_contract",
    "presign",
]

LoadKind = Literal["transfer", "document", "contract"]
LOAD_KINDS: tuple[LoadKind, ...] = ("transfer", "document", "contract")
LOAD_TITLES: dict[str, str] = {
    "transfer": "native transfers",
    "document": "document registrations",
    "contract": "sandboxed contract calls",
}
#: The name the example counter is deployed under for the ``contract`` load.
BENCH_CONTRACT = "bench_counter"
#: Fuel limits per kind: a sandboxed call is metered per operation and costs more.
_FUEL: dict[LoadKind, int] = {"transfer": 100_000, "document": 100_000, "contract": 1_000_000}


def _call(
    kind: LoadKind, sender: int, nonce: int, recipient: Address
) -> tuple[str, str, dict[str, Value]]:
    """The contract, method and arguments of transaction ``nonce`` of sender ``sender``."""
    if kind == "transfer":
        return "accounts", "transfer", {"to": recipient, "amount": 1}
    if kind == "document":
        doc_id = f"bench-{sender}-{nonce}"
        return (
            "documents",
            "register",
            {
                "id": doc_id,
                "sha256": hashlib.sha256(doc_id.encode()).digest(),
                "title": f"Benchmark document {sender}/{nonce}",
            },
        )
    return BENCH_CONTRACT, "add", {"n": 1}


def presign(
    kind: LoadKind,
    senders: list[KeyPair],
    per_sender: int,
    recipient: Address,
    *,
    chain_id: str = LOCALNET_CHAIN_ID,
) -> list[Transaction]:
    """``per_sender`` transactions of each sender from nonce 0, interleaved by nonce."""
    txs = []
    for nonce in range(per_sender):
        for index, key in enumerate(senders):
            contract, method, args = _call(kind, index, nonce, recipient)
            txs.append(
                make_transaction(
                    key,
                    chain_id=chain_id,
                    nonce=nonce,
                    contract=contract,
                    method=method,
                    args=args,
                    fuel_limit=_FUEL[kind],
                )
            )
    return txs


def deploy_bench_contract(url: str, node_homes: list[Path], passphrase: str) -> None:
    """Deploy the example counter as ``BENCH_CONTRACT`` and approve it with validator keys.

    With no organisation registered, validators approve (see
    ``contracts/system/deployments.py``): each node's validator approves in turn until the
    version is active. The deployer is a fresh key, so the benchmark's senders keep their
    nonces from 0.
    """
    deployer = KeyPair.generate()
    with Client(url) as client:
        try:
            deployed = client.send(
                deployer,
                "contracts",
                "deploy",
                {"name": BENCH_CONTRACT, "source": COUNTER},
                fuel_limit=20_000_000,
            )
            _require_ok(deployed, "deploying the benchmark contract")
            version = deployed["receipt"]["result"]["version"]
            status = "pending"
            for home in node_homes:
                validator = Keystore(home / "keys").load("validator", passphrase)
                approved = client.send(
                    validator, "contracts", "approve", {"name": BENCH_CONTRACT, "version": version}
                )
                _require_ok(approved, "approving the benchmark contract")
                status = approved["receipt"]["result"]
                if status == "active":
                    return
        except ApiError as exc:
            raise RuntimeError(f"setting up the benchmark contract: {exc}") from None
        raise RuntimeError(f"the benchmark contract is {status} after every validator approved")


def _require_ok(result: dict[str, object], what: str) -> None:
    receipt = result.get("receipt")
    if not isinstance(receipt, dict) or receipt.get("status") != "ok":
        raise RuntimeError(f"{what} failed: {receipt}")
