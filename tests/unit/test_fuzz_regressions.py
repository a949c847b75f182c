"""Inputs the decoder fuzzing found (``test_fuzz_decoders.py``, ``test_fuzz_wire.py``,
``test_fuzz_api.py``), each kept as a plain test so the bug stays fixed."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from civicledger.api.app import create_app
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


def test_method_not_allowed_names_the_allowed_methods(chain: LocalChain) -> None:
    with TestClient(create_app(chain.node)) as client:
        response = client.request("TRACE", "/v1/health")
        assert response.status_code == 405
        assert response.headers["allow"] == "GET"
        assert response.json()["error"]["code"] == "method_not_allowed"
        response = client.delete("/v1/transactions")
        assert response.status_code == 405 and response.headers["allow"] == "POST"


def test_openapi_documents_every_response_and_no_framework_validation_error(
    chain: LocalChain,
) -> None:
    document = create_app(chain.node).openapi()
    assert "HTTPValidationError" not in str(document)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                content = response.get("content", {})
                assert content, (method, path, status)
                schema = str(content)
                # Every answer has a model (or is text), never an untyped object.
                assert "$ref" in schema or "text/plain" in content, (method, path, status)
