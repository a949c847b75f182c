"""The genesis file: the network's birth certificate.

It names the chain, its start time, its validators, its consensus parameters and the
initial state (issuers and balances of the native currency). Every node of a network
must start from the same genesis file; its block hash is checked when peers meet.
Format documented in ``docs/spec/blocks.md`` ("Genesis").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from civicledger.chain.block import ZERO_HASH, Block, Header, Validator, ValidatorSet
from civicledger.chain.merkle import EMPTY_ROOT
from civicledger.contracts.base import state_key
from civicledger.encoding import encode
from civicledger.errors import DecodeError, InvalidBlock
from civicledger.types import Address, PublicKey, parse_hex, parse_public_key

__all__ = [
    "DEPLOY_BY_APPROVAL",
    "DEPLOY_OPEN",
    "ConsensusParams",
    "ContractPolicy",
    "Genesis",
    "load_genesis",
]


@dataclass(frozen=True, slots=True)
class ConsensusParams:
    #: A block is produced at most this often while transactions wait (ms).
    block_interval_ms: int = 1_000
    #: With no transactions, an empty block is produced this often (ms); 0 = never.
    empty_block_interval_ms: int = 10_000
    #: Most transactions in one block.
    max_block_txs: int = 5_000
    #: Most bytes of transactions in one block.
    max_block_bytes: int = 8 * 1024 * 1024
    #: A proposed block's time may be at most this far ahead of a validator's clock (ms).
    max_clock_drift_ms: int = 10_000


#: Deployment policies: user contracts become callable after the organisations approve
#: them (permissioned networks), or at once for whoever deploys them (public networks).
DEPLOY_BY_APPROVAL = "approval"
DEPLOY_OPEN = "open"


@dataclass(frozen=True, slots=True)
class ContractPolicy:
    """How user contracts reach this network."""

    #: ``"approval"`` (default) or ``"open"``.
    deployment: str = DEPLOY_BY_APPROVAL
    #: Native currency burnt from the deployer per byte of source (0: free).
    fee_per_byte: int = 0

    def __post_init__(self) -> None:
        if self.deployment not in (DEPLOY_BY_APPROVAL, DEPLOY_OPEN):
            raise DecodeError("genesis contracts.deployment must be 'approval' or 'open'")
        if type(self.fee_per_byte) is not int or not 0 <= self.fee_per_byte <= 2**64:
            raise DecodeError("genesis contracts.fee_per_byte must be an integer, 0 to 2**64")

    @property
    def is_default(self) -> bool:
        return self == ContractPolicy()

    def to_json(self) -> dict[str, Any]:
        return {"deployment": self.deployment, "fee_per_byte": self.fee_per_byte}


@dataclass(frozen=True, slots=True)
class Genesis:
    chain_id: str
    time_ms: int
    validators: ValidatorSet
    issuers: tuple[Address, ...] = ()
    balances: tuple[tuple[Address, int], ...] = ()
    params: ConsensusParams = field(default_factory=ConsensusParams)
    #: Node keys, beyond the validators', allowed to connect to the network.
    nodes: tuple[PublicKey, ...] = ()
    #: How user contracts are deployed (absent from the file and the state when default).
    contracts: ContractPolicy = field(default_factory=ContractPolicy)

    def initial_state(self) -> dict[bytes, bytes]:
        """The state before block 1: validators, allowed nodes, issuers and balances."""
        from civicledger.state.system import (
            CONTRACT_POLICY_KEY,
            NODES_KEY,
            VALIDATORS_KEY,
            encode_nodes,
        )

        state: dict[bytes, bytes] = {VALIDATORS_KEY: encode(self.validators.to_value())}
        if self.nodes:
            state[NODES_KEY] = encode_nodes(self.nodes)
        if not self.contracts.is_default:
            state[CONTRACT_POLICY_KEY] = encode(self.contracts.to_json())
        for issuer in self.issuers:
            state[state_key("accounts", f"issuer/{issuer.hex()}")] = encode(True)
        supply = 0
        for address, amount in self.balances:
            state[state_key("accounts", f"balance/{address.hex()}")] = encode(amount)
            supply += amount
        if supply:
            state[state_key("accounts", "supply")] = encode(supply)
        return state

    def block(self, state_root: bytes) -> Block:
        header = Header(
            chain_id=self.chain_id,
            height=0,
            prev_hash=ZERO_HASH,
            time_ms=self.time_ms,
            proposer=Address(bytes(20)),
            tx_root=EMPTY_ROOT,
            state_root=state_root,  # type: ignore[arg-type]
            receipts_root=EMPTY_ROOT,
            validator_set_hash=self.validators.hash,
        )
        return Block(header, ())

    def to_json(self) -> dict[str, Any]:
        out = self._to_json()
        if not self.contracts.is_default:
            out["contracts"] = self.contracts.to_json()
        return out

    def _to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "genesis_time_ms": self.time_ms,
            "validators": [
                {"public_key": v.public_key.hex(), "power": v.power}
                for v in self.validators.validators
            ],
            "issuers": [a.hex() for a in self.issuers],
            "balances": [{"address": a.hex(), "amount": n} for a, n in self.balances],
            "nodes": [k.hex() for k in self.nodes],
            "params": {
                "block_interval_ms": self.params.block_interval_ms,
                "empty_block_interval_ms": self.params.empty_block_interval_ms,
                "max_block_txs": self.params.max_block_txs,
                "max_block_bytes": self.params.max_block_bytes,
                "max_clock_drift_ms": self.params.max_clock_drift_ms,
            },
        }

    @classmethod
    def from_json(cls, obj: Any) -> Genesis:
        try:
            chain_id = obj["chain_id"]
            if not isinstance(chain_id, str) or not 0 < len(chain_id) <= 64:
                raise DecodeError("genesis chain_id must be 1 to 64 characters")
            validators = ValidatorSet.of(
                [
                    Validator(
                        parse_public_key(parse_hex(v["public_key"], what="validator key")),
                        _strict_int(v["power"], "validator power", 1, 2**62),
                    )
                    for v in obj["validators"]
                ]
            )
            issuers = tuple(
                Address(parse_hex(a, what="issuer address", size=20)) for a in obj["issuers"]
            )
            nodes_raw = list(obj.get("nodes", []))
            balances = tuple(
                (
                    Address(parse_hex(b["address"], what="address", size=20)),
                    _strict_int(b["amount"], "balance", 1, 2**128 - 1),
                )
                for b in obj.get("balances", [])
            )
            if len(set(issuers)) != len(issuers) or len(set(nodes_raw)) != len(nodes_raw):
                raise DecodeError("genesis issuers and nodes must not repeat")
            addresses = [a for a, _ in balances]
            if len(set(addresses)) != len(addresses):
                raise DecodeError("genesis balances name an address twice")
            if any(not 0 < n < 2**128 for _, n in balances):
                raise DecodeError("genesis balances must be between 1 and 2**128 - 1")
            raw_params = obj.get("params", {})
            if not isinstance(raw_params, dict):
                raise DecodeError("genesis params must be an object")
            for name, value in raw_params.items():
                _strict_int(value, f"params.{name}", 0, 2**53)
            params = ConsensusParams(**raw_params)
            if min(params.block_interval_ms, params.max_block_txs, params.max_block_bytes) < 1:
                raise DecodeError(
                    "genesis block_interval_ms, max_block_txs and max_block_bytes must be >= 1"
                )
            nodes = tuple(
                parse_public_key(parse_hex(k, what="node key")) for k in obj.get("nodes", [])
            )
            raw_policy = obj.get("contracts", {})
            if not isinstance(raw_policy, dict) or set(raw_policy) - {
                "deployment",
                "fee_per_byte",
            }:
                raise DecodeError("genesis contracts may hold only deployment and fee_per_byte")
            policy = ContractPolicy(
                raw_policy.get("deployment", DEPLOY_BY_APPROVAL),
                raw_policy.get("fee_per_byte", 0),
            )
            return cls(
                chain_id,
                _strict_int(obj["genesis_time_ms"], "time", 0, 2**63 - 1),
                validators,
                issuers,
                balances,
                params,
                nodes,
                policy,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DecodeError(f"invalid genesis file: {exc!r}") from None
        except InvalidBlock as exc:
            raise DecodeError(f"invalid genesis file: {exc.message}") from None


def _strict_int(value: Any, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise DecodeError(f"genesis {what} must be an integer from {low} to {high}")
    return value


def load_genesis(path: Path) -> Genesis:
    try:
        obj = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DecodeError(f"cannot read genesis file {path}: {exc}") from None
    return Genesis.from_json(obj)
