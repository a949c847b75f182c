"""Creating local networks: folders with keys, genesis and node configuration."""

from __future__ import annotations

import json
import time
from pathlib import Path

from civicledger.chain.block import Validator, ValidatorSet
from civicledger.chain.genesis import ConsensusParams, Genesis
from civicledger.crypto.keystore import Keystore
from civicledger.node.config import ApiConfig, NodeConfig, render_config
from civicledger.types import Address

__all__ = ["LOCALNET_CHAIN_ID", "create_single_validator_network"]

LOCALNET_CHAIN_ID = "civic-localnet"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def create_single_validator_network(
    home: Path,
    *,
    chain_id: str,
    port: int,
    passphrase: str,
    issuer: str = "issuer",
    balances: tuple[tuple[Address, int], ...] = (),
    params: ConsensusParams | None = None,
) -> Path:
    """Write a node folder with a validator key, an issuer key, genesis and config."""
    home.mkdir(parents=True, exist_ok=True)
    keystore = Keystore(home / "keys")
    validator = keystore.create("validator", passphrase)
    issuer_key = keystore.create(issuer, passphrase)
    passphrase_path = home / "passphrase"
    passphrase_path.write_text(passphrase + "\n")
    passphrase_path.chmod(0o600)
    genesis = Genesis(
        chain_id=chain_id,
        time_ms=_now_ms(),
        validators=ValidatorSet.of([Validator(validator.public_key, 1)]),
        issuers=(issuer_key.address,),
        balances=balances,
        params=params or ConsensusParams(),
    )
    (home / "genesis.json").write_text(json.dumps(genesis.to_json(), indent=2) + "\n")
    config = NodeConfig(
        home=home,
        name="node0",
        validator_key="validator",
        passphrase_file=Path("passphrase"),
        api=ApiConfig(port=port),
    )
    config_path = home / "config.toml"
    config_path.write_text(render_config(config))
    return config_path
