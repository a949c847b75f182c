"""The contracts a node knows, by name."""

from __future__ import annotations

from civicledger.contracts.base import Contract
from civicledger.contracts.system.accounts import Accounts
from civicledger.contracts.system.documents import Documents
from civicledger.contracts.system.evidence import Evidence
from civicledger.contracts.system.governance import Governance
from civicledger.contracts.system.organisations import Organisations
from civicledger.errors import ContractError

__all__ = ["ContractRegistry", "default_registry"]


class ContractRegistry:
    def __init__(self, contracts: list[Contract]) -> None:
        self._contracts = {c.name: c for c in contracts}

    def get(self, name: str) -> Contract:
        contract = self._contracts.get(name)
        if contract is None:
            raise ContractError(f"no contract named {name!r}", code="unknown_contract")
        return contract

    def names(self) -> list[str]:
        return sorted(self._contracts)


def default_registry() -> ContractRegistry:
    return ContractRegistry([Accounts(), Documents(), Evidence(), Governance(), Organisations()])
