"""The shapes of the API's responses, for its OpenAPI document.

Handlers build plain dictionaries (the ``to_json`` of each object); these models only
describe them, so clients and the schema checks in the test suite (schemathesis) know
exactly what each operation returns and with which status. Every model forbids members it
does not list: a new member must be declared here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from civicledger.api.errors import STATUS_DESCRIPTIONS

__all__ = [
    "Account",
    "BlockDetail",
    "BlockList",
    "ContractList",
    "ErrorResponse",
    "GenesisInfo",
    "Health",
    "QueryResult",
    "ReceiptProofFile",
    "ScheduledCallStatus",
    "StateEntry",
    "StateProofFile",
    "Status",
    "Submitted",
    "SubmittedBatch",
    "TransactionDetail",
    "ValidatorList",
    "error_responses",
    "finish_openapi",
]

Hex = Annotated[str, Field(pattern=r"^([0-9a-f]{2})*$", description="Lowercase hex")]
Hash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="32 bytes, lowercase hex")]
AddressHex = Annotated[str, Field(pattern=r"^[0-9a-f]{40}$", description="20 bytes, hex")]
KeyHex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="An Ed25519 public key")]
SignatureHex = Annotated[str, Field(pattern=r"^[0-9a-f]{128}$", description="64 bytes, hex")]
Count = Annotated[int, Field(ge=0)]
#: A ledger value in its JSON form (``LEDGER_VALUE_SCHEMA`` below).
JsonValue = Annotated[Any, Field(description="A ledger value in JSON (see LedgerValue)")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(_Model):
    code: str = Field(description="Stable machine-readable code, e.g. `nonce_too_low`")
    message: str = Field(description="What went wrong, for a person")


class ErrorResponse(_Model):
    error: ErrorBody


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of an operation that may fail with ``statuses``."""
    return {
        status: {"model": ErrorResponse, "description": STATUS_DESCRIPTIONS[status]}
        for status in statuses
    }


class Health(_Model):
    ok: bool
    height: Count


class Head(_Model):
    height: Count
    hash: Hash
    time_ms: Count


class MempoolStatus(_Model):
    size: Count
    bytes: Count


class ConsensusStatus(BaseModel):
    """The consensus driver's diagnostics (more members may appear)."""

    height: Count
    round: int
    step: int | str
    peers: Count


class Status(_Model):
    version: str
    chain_id: str
    genesis_hash: Hex
    head: Head
    mempool: MempoolStatus
    validator: AddressHex | None = Field(description="This node's validator address, if any")
    validators: Count
    consensus: ConsensusStatus | None


class GenesisValidator(_Model):
    public_key: KeyHex
    power: Annotated[int, Field(ge=1)]


class GenesisBalance(_Model):
    address: AddressHex
    amount: Count


class GenesisParams(_Model):
    block_interval_ms: Count
    empty_block_interval_ms: Count
    max_block_txs: Count
    max_block_bytes: Count
    max_clock_drift_ms: Count


class GenesisInfo(_Model):
    chain_id: str
    genesis_time_ms: Count
    validators: list[GenesisValidator]
    issuers: list[AddressHex]
    balances: list[GenesisBalance]
    nodes: list[KeyHex]
    params: GenesisParams


class ValidatorInfo(_Model):
    address: AddressHex
    public_key: KeyHex
    power: Annotated[int, Field(ge=1)]


class ValidatorList(_Model):
    height: Count
    hash: Hash
    validators: list[ValidatorInfo]


class Submitted(_Model):
    tx_id: Hash
    status: Literal["pending"]


class BatchItem(_Model):
    status: Literal["pending", "refused"]
    tx_id: Hash | None = Field(None, description="Absent if the bytes are no transaction")
    error: ErrorBody | None = Field(None, description="Why it was refused")
    http_status: int | None = Field(
        None, description="The status a single submission would have been refused with"
    )


class SubmittedBatch(_Model):
    accepted: Count = Field(description="How many were admitted to the mempool")
    results: list[BatchItem] = Field(description="One per transaction, in order")


class TransactionJson(_Model):
    tx_id: Hash
    chain_id: str
    sender: KeyHex
    sender_address: AddressHex
    nonce: Count
    contract: str
    method: str
    args: dict[str, JsonValue]
    fuel_limit: Count
    expiry: Count
    signature: SignatureHex


class EventJson(_Model):
    contract: str
    name: str
    data: dict[str, JsonValue]


class ReceiptJson(_Model):
    tx_id: Hash
    status: Literal["ok", "failed"]
    error_code: str
    error_message: str
    fuel_used: Count
    events: list[EventJson]
    result: JsonValue


class TransactionDetail(_Model):
    tx_id: Hash
    status: Literal["pending", "committed"]
    height: Count | None
    index: Count | None
    transaction: TransactionJson
    receipt: ReceiptJson | None


class HeaderJson(_Model):
    hash: Hash
    chain_id: str
    height: Count
    prev_hash: Hash
    time_ms: Count
    proposer: AddressHex
    tx_root: Hash
    state_root: Hash
    receipts_root: Hash
    validator_set_hash: Hash


class CommitSignatureJson(_Model):
    public_key: KeyHex
    signature: SignatureHex


class CommitJson(_Model):
    round: Count
    signatures: list[CommitSignatureJson]


class TransactionWithReceipt(TransactionJson):
    receipt: ReceiptJson


class BlockDetail(_Model):
    header: HeaderJson
    tx_count: Count
    commit: CommitJson | None = Field(description="None for the genesis block")
    tx_ids: list[Hash] | None = Field(None, description="With `tx_ids=true`")
    transactions: list[TransactionWithReceipt] | None = Field(None, description="With `txs=true`")
    scheduled: list[ReceiptJson] | None = Field(
        None, description="With `txs=true`: receipts of the scheduled calls the block ran"
    )


class BlockList(_Model):
    head: Count
    blocks: list[HeaderJson]


class Account(_Model):
    address: AddressHex
    nonce: Count
    pending_nonce: Count
    balance: Count


class ContractInfo(_Model):
    name: str
    calls: list[str]
    views: list[str]


class ContractList(_Model):
    contracts: list[ContractInfo]


class QueryResult(_Model):
    height: Count
    result: JsonValue


class ScheduledCallJson(_Model):
    id: Hash
    contract: str
    method: str
    args: dict[str, JsonValue]
    fuel: Count
    sender: AddressHex
    due: dict[Literal["height", "time"], Count] = Field(
        description='`{"height": h}` or `{"time": ms}`: when the call falls due'
    )
    scheduled_at: Count


class ScheduledCallStatus(_Model):
    """A waiting call (with ``call``), or one that ran (``height``, ``index``, ``receipt``)."""

    status: Literal["waiting", "ran"]
    call: ScheduledCallJson | None = None
    height: Count | None = None
    index: Count | None = None
    receipt: ReceiptJson | None = None


class StateEntry(_Model):
    height: Count
    contract: str
    key: str
    raw: Hex
    value: JsonValue


class ReceiptProofFile(_Model):
    """A receipt proof (docs/spec/receipts.md): every object as hex of its encoding."""

    format: Literal["civic-ledger/receipt-proof/v1"]
    tx_id: Hash
    height: Count
    status: Literal["ok", "failed"]
    transaction: Hex
    receipt: Hex
    tx_proof: Hex
    receipt_proof: Hex
    header: Hex
    commit: Hex
    validators: Hex
    handoffs: list[Hex] | None = Field(
        default=None,
        description="Validator-set handoffs below the block, in height order (absent: none)",
    )


#: A ledger value in JSON (docs/spec/encoding.md, "JSON mapping"): no floats, integers of
#: at most 256 bits; a map whose only member is ``$bytes`` holds hex.
LEDGER_VALUE_SCHEMA: dict[str, Any] = {
    "description": "A ledger value in its JSON form",
    "anyOf": [
        {"type": "null"},
        {"type": "boolean"},
        {"type": "integer", "minimum": -(2**256) + 1, "maximum": 2**256 - 1},
        {"type": "string"},
        {"type": "array", "items": {"$ref": "#/components/schemas/LedgerValue"}},
        {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/LedgerValue"}},
    ],
}
#: Where a schema refers to a ledger value.
LEDGER_VALUE_REF: dict[str, Any] = {"$ref": "#/components/schemas/LedgerValue"}


def finish_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the ``LedgerValue`` schema, and remove the 422 responses FastAPI documents for
    parameter validation: this API answers those with 400 and its own error body
    (``create_app``'s handler)."""
    schema.setdefault("components", {}).setdefault("schemas", {})["LedgerValue"] = (
        LEDGER_VALUE_SCHEMA
    )
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            response = operation.get("responses", {}).get("422", {})
            if "HTTPValidationError" in str(response.get("content", "")):
                del operation["responses"]["422"]
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    return schema


class StateProofFile(_Model):
    """A state proof bundle (docs/spec/state.md, "State proof bundles")."""

    format: Literal["civic-ledger/state-proof/v1"]
    contract: str
    key: str
    height: Count
    present: bool
    value: Hex | None
    proof: Hex
    header: Hex
    commit: Hex
    validators: Hex
    handoffs: list[Hex] | None = Field(
        default=None,
        description="Validator-set handoffs below the block, in height order (absent: none)",
    )
