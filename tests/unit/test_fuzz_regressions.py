"""Inputs the decoder fuzzing found (``test_fuzz_decoders.py``, ``test_fuzz_wire.py``,
``test_fuzz_api.py``), each kept as a plain test so the bug stays fixed."""

from __future__ import annotations

import pytest

from civicledger.errors import DecodeError
from civicledger.state.bundle import StateProofBundle
from civicledger.testing import LocalChain


@pytest.fixture(scope="module")
def chain() -> LocalChain:
    chain = LocalChain()
    chain.call("accounts", "transfer", {"to": chain.key(7).address, "amount": 5})
    return chain


@pytest.mark.parametrize("present", [None, False, "true", 1])
def test_state_proof_file_whose_present_contradicts_the_proof_is_refused(
    chain: LocalChain, present: object
) -> None:
    saved = chain.node.get_state_proof("accounts", f"balance/{chain.user.address.hex()}").to_json()
    assert saved["present"] is True
    StateProofBundle.from_json(saved)
    with pytest.raises(DecodeError, match="present"):
        StateProofBundle.from_json({**saved, "present": present})


def test_state_proof_file_without_value_is_refused(chain: LocalChain) -> None:
    saved = chain.node.get_state_proof("accounts", "balance/absent").to_json()
    assert saved["value"] is None
    StateProofBundle.from_json(saved)
    with pytest.raises(DecodeError, match="value"):
        StateProofBundle.from_json({k: v for k, v in saved.items() if k != "value"})
