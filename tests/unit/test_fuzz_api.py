"""The HTTP API against its own OpenAPI document, with schemathesis.

For every operation schemathesis generates requests from the document (valid ones, and
ones that break it) and checks each response: no 5xx, a documented status code, a body
that matches the documented model (the models forbid undeclared members), the declared
content type, ``Allow`` on a 405, refusals of invalid input, acceptance of valid input.
The node is real and in process (ASGI, no server): a one-validator chain with a few
committed transactions. Each operation is also called with ids that exist (a
transaction, a block, an account), so the 200 answers are checked, not just the 404s.

What a schema cannot say is configured, not ignored: a request that matches the schema may
still name a contract that does not exist or a transaction the ledger refuses, so 404,
409 and 422 count as accepted; a submitted transaction's bytes must decode and verify,
which no schema states, and a query's numbers must be integers in the JSON text, so these
two are exempt from the "valid input is accepted" check (their refusals must still be
documented 4xx with the error body).
"""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance
from tests.fuzzing import fuzz_settings

from civicledger.api.app import create_app
from civicledger.crypto.hashing import sha256
from civicledger.testing import LocalChain

CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "404", "409", "422"]}}}
)
#: Path parameters that name something, and a value of each that exists.
KNOWN: dict[str, str] = {}


def _build_app() -> Any:
    """A node with a few committed transactions, and its API (built when the module is
    collected: schemathesis reads the document to make one test per operation)."""
    chain = LocalChain()
    other = chain.key(7)
    receipt = chain.call("accounts", "transfer", {"to": other.address, "amount": 5})
    chain.call(
        "documents",
        "register",
        {"id": "permit-1", "sha256": sha256(b"permit"), "title": "Building permit"},
    )
    KNOWN.update(
        tx_id=receipt.tx_id.hex(),
        block_hash=chain.node.head.hash.hex(),
        address=chain.user.address.hex(),
        height="1",
        contract="accounts",
        key=f"balance/{other.address.hex()}",
    )
    return create_app(chain.node)


schema = schemathesis.openapi.from_asgi("/openapi.json", _build_app(), config=CONFIG)


#: Operations whose valid input the schema cannot fully state: a submitted transaction
#: (or batch of them) must decode and verify, and a query's JSON numbers must be written
#: as integers (``2.0`` is an integer to JSON Schema but a float to the ledger).
NOT_CHECKED_FOR_ACCEPTANCE = {"/v1/transactions", "/v1/txs", "/v1/query"}


@schema.parametrize()
@fuzz_settings(25)
def test_fuzz_api_operation_keeps_its_documented_contract(case: Any) -> None:
    path = case.operation.path
    excluded = [positive_data_acceptance] if path in NOT_CHECKED_FOR_ACCEPTANCE else []
    first = case.call_and_validate(excluded_checks=excluded)
    # The same request about things that exist: what was not found is found.
    names = set(case.path_parameters or {}) & set(KNOWN)
    if first.status_code == 404 and names:
        case.path_parameters = {**case.path_parameters, **{n: KNOWN[n] for n in names}}
        response = case.call_and_validate(excluded_checks=excluded)
        assert response.status_code < 400 or "{key}" in path, response.text
