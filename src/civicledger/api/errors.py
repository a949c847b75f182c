"""The one place where ledger errors become HTTP responses.

Every error response is ``{"error": {"code": ..., "message": ...}}`` with a status from
``STATUS_BY_ERROR`` (most specific class first).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from civicledger.errors import (
    ContractError,
    CorruptionError,
    DecodeError,
    EncodeError,
    InvalidBlock,
    InvalidProof,
    InvalidTransaction,
    LedgerError,
    MempoolFull,
    NotFound,
)

__all__ = ["STATUS_BY_ERROR", "error_response", "http_status_of", "ledger_error_handler"]

STATUS_BY_ERROR: tuple[tuple[type[LedgerError], int], ...] = (
    (NotFound, 404),
    (MempoolFull, 503),
    (CorruptionError, 500),
    (DecodeError, 400),
    (EncodeError, 400),
    (InvalidTransaction, 422),
    (InvalidProof, 422),
    (InvalidBlock, 422),
    (ContractError, 422),
)

#: Refusals that are about the sender's sequence rather than the content.
CONFLICT_CODES = frozenset({"duplicate", "nonce_too_low", "nonce_taken"})


def http_status_of(exc: LedgerError) -> int:
    if isinstance(exc, InvalidTransaction) and exc.code in CONFLICT_CODES:
        return 409
    if isinstance(exc, InvalidTransaction) and exc.code == "too_large":
        return 413
    if isinstance(exc, ContractError) and exc.code == "not_found":
        return 404
    if exc.code == "busy":
        return 503
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 400


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def ledger_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LedgerError)
    return error_response(http_status_of(exc), exc.code, exc.message)
