"""State keys the ledger itself uses (all under ``$sys/``, which no contract can reach).

``$sys/validators``: the validator set that must sign the next block, as
``ValidatorSet.to_value()``; ``$sys/validators/next``: ``[activation_height, set]`` of an
approved change, promoted by the executor after the block before ``activation_height``;
``$sys/nodes``: extra node keys (beyond validators) allowed to connect;
``$sys/nonce/<address>``: an account's next nonce; ``$sys/contracts/policy``: how user
contracts are deployed on this network (absent: by approval, no fee; see ``genesis``).
"""

from __future__ import annotations

from civicledger.chain.block import ValidatorSet
from civicledger.encoding import Value, decode, encode
from civicledger.errors import CorruptionError
from civicledger.state.overlay import StateReader
from civicledger.types import PublicKey

__all__ = [
    "CONTRACT_POLICY_KEY",
    "NEXT_VALIDATORS_KEY",
    "NODES_KEY",
    "VALIDATORS_KEY",
    "encode_nodes",
    "get_allowed_nodes",
    "get_next_validators",
    "get_validator_set",
]

VALIDATORS_KEY = b"$sys/validators"
NEXT_VALIDATORS_KEY = b"$sys/validators/next"
NODES_KEY = b"$sys/nodes"
CONTRACT_POLICY_KEY = b"$sys/contracts/policy"


def get_validator_set(state: StateReader) -> ValidatorSet:
    raw = state.get(VALIDATORS_KEY)
    if raw is None:
        raise CorruptionError("the state holds no validator set")
    return ValidatorSet.from_value(decode(raw))


def get_next_validators(state: StateReader) -> tuple[int, ValidatorSet] | None:
    raw = state.get(NEXT_VALIDATORS_KEY)
    if raw is None:
        return None
    value = decode(raw)
    assert isinstance(value, list) and isinstance(value[0], int)
    return value[0], ValidatorSet.from_value(value[1])


def encode_nodes(keys: list[PublicKey] | tuple[PublicKey, ...]) -> bytes:
    value: list[Value] = [bytes(k) for k in sorted(set(keys))]
    return encode(value)


def get_allowed_nodes(state: StateReader) -> frozenset[bytes]:
    """Node keys allowed to connect: every validator plus the ``$sys/nodes`` list."""
    allowed: set[bytes] = {v.public_key for v in get_validator_set(state).validators}
    raw = state.get(NODES_KEY)
    if raw is not None:
        value = decode(raw)
        assert isinstance(value, list)
        allowed.update(k for k in value if isinstance(k, bytes))
    return frozenset(allowed)
