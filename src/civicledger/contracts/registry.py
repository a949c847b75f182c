"""The contracts a node knows: the built-in system contracts, and user contracts deployed
and approved on chain (``contracts/system/deployments.py``), compiled in the sandbox on
first use and cached by code hash."""

from __future__ import annotations

from collections import OrderedDict

from civicledger.contracts.base import Contract, state_key
from civicledger.contracts.system.accounts import Accounts
from civicledger.contracts.system.deployments import CONTRACT_NAME, Deployments, load_source
from civicledger.contracts.system.documents import Documents
from civicledger.contracts.system.evidence import Evidence
from civicledger.contracts.system.governance import Governance
from civicledger.contracts.system.organisations import Organisations
from civicledger.encoding import Value, decode
from civicledger.errors import ContractError
from civicledger.state.overlay import StateReader

__all__ = ["ContractRegistry", "default_registry"]

#: Compiled user contracts kept in memory, by code hash.
MAX_COMPILED = 256


class ContractRegistry:
    def __init__(self, contracts: list[Contract]) -> None:
        self._contracts = {c.name: c for c in contracts}
        # Keyed by name and code hash: one source may be deployed under two names, and
        # a compiled contract knows its name (it appears in its error messages).
        self._compiled: OrderedDict[tuple[str, bytes], Contract] = OrderedDict()

    def get(self, name: str, state: StateReader | None = None) -> Contract:
        """The contract ``name``: a system contract, or the active version of a deployed
        one as recorded in ``state``."""
        contract = self._contracts.get(name)
        if contract is not None:
            return contract
        if state is not None:
            deployed = self._deployed(name, state)
            if deployed is not None:
                return deployed
        raise ContractError(f"no contract named {name!r}", code="unknown_contract")

    def _deployed(self, name: str, state: StateReader) -> Contract | None:
        raw = state.get(state_key(CONTRACT_NAME, f"active/{name}"))
        if raw is None:
            return None
        active = decode(raw)
        if not isinstance(active, dict) or not isinstance(active.get("code_hash"), bytes):
            return None
        code_hash = active["code_hash"]
        assert isinstance(code_hash, bytes)
        cache_key = (name, code_hash)
        cached = self._compiled.get(cache_key)
        if cached is not None:
            self._compiled.move_to_end(cache_key)
            return cached

        def read(key: str) -> Value:
            value = state.get(state_key(CONTRACT_NAME, key))
            return None if value is None else decode(value)

        source = load_source(read, code_hash)
        if source is None:
            raise ContractError(f"the code of {name!r} is missing or damaged", code="corrupted")
        from civicledger.contracts.sandbox import compile_contract

        contract = compile_contract(source, name=name).instantiate()
        self._compiled[cache_key] = contract
        if len(self._compiled) > MAX_COMPILED:
            self._compiled.popitem(last=False)
        return contract

    def names(self) -> list[str]:
        return sorted(self._contracts)


def default_registry() -> ContractRegistry:
    return ContractRegistry(
        [Accounts(), Documents(), Evidence(), Governance(), Organisations(), Deployments()]
    )
