"""Shared fixtures of the test suite: fixed keys, a genesis helper, a node, a signer.

Helpers are exposed as fixtures (``make_genesis``, ``sign``) so test modules in any
folder can use them without importing this file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from civicledger.chain.block import Validator, ValidatorSet
from civicledger.chain.genesis import ConsensusParams, Genesis
from civicledger.chain.transaction import Transaction, make_transaction
from civicledger.crypto.keys import KeyPair
from civicledger.encoding import Value
from civicledger.node.node import Node
from civicledger.types import Address

# starlette warns when its test client runs on ``httpx`` rather than ``httpx2``; with
# ``filterwarnings = error`` that would break collection. Import it once here, quietly.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import starlette.testclient  # noqa: F401

settings.register_profile(
    "civicledger",
    deadline=None,
    max_examples=50,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "civicledger"))

CHAIN_ID = "test-1"
GENESIS_TIME_MS = 1_700_000_000_000

VALIDATOR_KEY = KeyPair.from_seed(bytes(32))
ALICE_KEY = KeyPair.from_seed(b"a" * 32)
BOB_KEY = KeyPair.from_seed(b"b" * 32)


@pytest.fixture
def chain_id() -> str:
    return CHAIN_ID


@pytest.fixture
def validator_key() -> KeyPair:
    return VALIDATOR_KEY


@pytest.fixture
def alice() -> KeyPair:
    """The genesis issuer (may mint and grant the issuer role)."""
    return ALICE_KEY


@pytest.fixture
def bob() -> KeyPair:
    """An ordinary account with no role and no funds."""
    return BOB_KEY


def _make_genesis(
    *,
    chain_id: str = CHAIN_ID,
    time_ms: int = GENESIS_TIME_MS,
    validators: list[KeyPair] | None = None,
    issuers: tuple[Address, ...] | None = None,
    balances: tuple[tuple[Address, int], ...] = (),
    params: ConsensusParams | None = None,
) -> Genesis:
    keys = validators if validators is not None else [VALIDATOR_KEY]
    return Genesis(
        chain_id,
        time_ms,
        ValidatorSet.of([Validator(k.public_key, 1) for k in keys]),
        issuers=issuers if issuers is not None else (ALICE_KEY.address,),
        balances=balances,
        params=params or ConsensusParams(),
    )


@pytest.fixture
def make_genesis() -> Callable[..., Genesis]:
    """``make_genesis(chain_id=..., issuers=..., balances=..., params=...)``; alice issues."""
    return _make_genesis


@pytest.fixture
def genesis() -> Genesis:
    return _make_genesis()


@pytest.fixture
def node(tmp_path: Path, genesis: Genesis) -> Iterator[Node]:
    """A single-validator node in a fresh folder, closed at teardown."""
    n = Node(tmp_path / "node", genesis, VALIDATOR_KEY)
    try:
        yield n
    finally:
        n.close()


def _sign(
    key: KeyPair,
    nonce: int,
    contract: str,
    method: str,
    args: dict[str, Value] | None = None,
    **kw: Any,
) -> Transaction:
    kw.setdefault("chain_id", CHAIN_ID)
    return make_transaction(key, nonce=nonce, contract=contract, method=method, args=args, **kw)


@pytest.fixture
def sign() -> Callable[..., Transaction]:
    """``sign(key, nonce, contract, method, args, chain_id=..., fuel_limit=..., expiry=...)``."""
    return _sign
