"""Tamper-evident document registry: one version of the truth.

A document is registered under an identifier chosen by its issuer (``decree-2026-17``)
with the SHA-256 of its file and a title. The file itself stays off chain. The issuer may
publish new versions, each superseding the previous one, or revoke the document; nothing
is ever edited in place. Anyone holding a copy can ask whether it is registered, which
version it is and whether it is still current, with the full history.

State keys (under ``documents/``):
``doc/<id>`` → ``{"issuer", "title", "versions", "status", "revoked_reason"}``;
``ver/<id>/<n>`` → ``{"sha256", "note", "height", "time_ms", "tx_id", "by"}`` for n = 1, 2...;
``hash/<sha256 hex>`` → ``[id, n]``.
Titles and notes are public: they must not hold personal data.
"""

from __future__ import annotations

from civicledger.contracts.base import Args, Context, Contract, ViewContext, call, view
from civicledger.encoding import Value
from civicledger.errors import ContractError

__all__ = ["MAX_VERSIONS", "Documents"]

MAX_ID_LENGTH = 128
MAX_TITLE_LENGTH = 200
MAX_NOTE_LENGTH = 500
#: A document keeps at most this many versions (history queries stay bounded).
MAX_VERSIONS = 1_000
ACTIVE = "active"
REVOKED = "revoked"


def _doc_key(doc_id: str) -> str:
    return f"doc/{doc_id}"


def _version_key(doc_id: str, n: int) -> str:
    return f"ver/{doc_id}/{n}"


def _hash_key(sha: bytes) -> str:
    return f"hash/{sha.hex()}"


def _doc_id(args: Args) -> str:
    doc_id = args.text("id", max_length=MAX_ID_LENGTH)
    if not doc_id or not doc_id.isprintable() or "/" in doc_id:
        raise ContractError(
            "argument 'id' must be 1-128 printable characters without '/'", code="bad_argument"
        )
    return doc_id


def _load_doc(ctx: ViewContext, doc_id: str) -> dict[str, Value]:
    doc = ctx.get(_doc_key(doc_id))
    if not isinstance(doc, dict):
        raise ContractError(f"no document {doc_id!r}", code="not_found")
    return doc


class Documents(Contract):
    name = "documents"

    def _add_version(self, ctx: Context, doc_id: str, n: int, sha: bytes, note: str) -> None:
        existing = ctx.get(_hash_key(sha))
        ctx.require(
            existing is None,
            f"this file (sha256 {sha.hex()}) is already registered as {existing!r}",
            code="duplicate",
        )
        ctx.set(
            _version_key(doc_id, n),
            {
                "sha256": sha,
                "note": note,
                "height": ctx.height,
                "time_ms": ctx.time_ms,
                "tx_id": ctx.tx_id,
                "by": ctx.sender,
            },
        )
        ctx.set(_hash_key(sha), [doc_id, n])

    def _load_own(self, ctx: Context, doc_id: str) -> dict[str, Value]:
        doc = _load_doc(ctx, doc_id)
        ctx.require(
            doc["issuer"] == ctx.sender,
            f"only the issuer of {doc_id!r} may change it",
            code="permission_denied",
        )
        ctx.require(doc["status"] == ACTIVE, f"document {doc_id!r} is revoked", code="revoked")
        return doc

    @call
    def register(self, ctx: Context, args: Args) -> Value:
        """Register a new document with its first version."""
        doc_id = _doc_id(args)
        sha = args.blob("sha256", size=32)
        title = args.text("title", max_length=MAX_TITLE_LENGTH)
        note = args.text("note", max_length=MAX_NOTE_LENGTH, required=False)
        args.check_no_extra()
        ctx.require(
            not ctx.has(_doc_key(doc_id)), f"document {doc_id!r} already exists", code="duplicate"
        )
        self._add_version(ctx, doc_id, 1, sha, note)
        ctx.set(
            _doc_key(doc_id),
            {
                "issuer": ctx.sender,
                "title": title,
                "versions": 1,
                "status": ACTIVE,
                "revoked_reason": "",
            },
        )
        ctx.emit("DocumentRegistered", id=doc_id, sha256=sha, version=1, issuer=ctx.sender)
        return 1

    @call
    def update(self, ctx: Context, args: Args) -> Value:
        """Publish a new version that supersedes the current one (issuer only)."""
        doc_id = _doc_id(args)
        sha = args.blob("sha256", size=32)
        note = args.text("note", max_length=MAX_NOTE_LENGTH, required=False)
        args.check_no_extra()
        doc = self._load_own(ctx, doc_id)
        versions = doc["versions"]
        assert isinstance(versions, int)
        ctx.require(versions < MAX_VERSIONS, f"document {doc_id!r} has {MAX_VERSIONS} versions")
        n = versions + 1
        self._add_version(ctx, doc_id, n, sha, note)
        ctx.set(_doc_key(doc_id), {**doc, "versions": n})
        ctx.emit("DocumentUpdated", id=doc_id, sha256=sha, version=n, supersedes=n - 1)
        return n

    @call
    def revoke(self, ctx: Context, args: Args) -> Value:
        """Withdraw a document: no version of it is current any more (issuer only)."""
        doc_id = _doc_id(args)
        reason = args.text("reason", max_length=MAX_NOTE_LENGTH)
        args.check_no_extra()
        doc = self._load_own(ctx, doc_id)
        ctx.set(_doc_key(doc_id), {**doc, "status": REVOKED, "revoked_reason": reason})
        ctx.emit("DocumentRevoked", id=doc_id, reason=reason)
        return None

    @view
    def get(self, ctx: ViewContext, args: Args) -> Value:
        """The document's record and its current version."""
        doc_id = _doc_id(args)
        args.check_no_extra()
        doc = _load_doc(ctx, doc_id)
        current = ctx.get(_version_key(doc_id, int(doc["versions"])))  # type: ignore[arg-type]
        return {"id": doc_id, **doc, "current": current}

    @view
    def history(self, ctx: ViewContext, args: Args) -> Value:
        """Every version, oldest first, with who published it, when, and why."""
        doc_id = _doc_id(args)
        args.check_no_extra()
        doc = _load_doc(ctx, doc_id)
        count = doc["versions"]
        assert isinstance(count, int)
        versions: list[Value] = []
        for n in range(1, count + 1):
            version = ctx.get(_version_key(doc_id, n))
            assert isinstance(version, dict)
            versions.append({"version": n, **version})
        return {"id": doc_id, **doc, "history": versions}

    @view
    def lookup(self, ctx: ViewContext, args: Args) -> Value:
        """Is a file with this SHA-256 registered, as which version, and is it current?"""
        sha = args.blob("sha256", size=32)
        args.check_no_extra()
        found = ctx.get(_hash_key(sha))
        if found is None:
            return {"registered": False}
        assert isinstance(found, list)
        doc_id, n = found
        assert isinstance(doc_id, str) and isinstance(n, int)
        doc = _load_doc(ctx, doc_id)
        current = ctx.get(_version_key(doc_id, int(doc["versions"])))  # type: ignore[arg-type]
        assert isinstance(current, dict)
        is_current = doc["status"] == ACTIVE and n == doc["versions"]
        return {
            "registered": True,
            "id": doc_id,
            "version": n,
            "current": is_current,
            "status": doc["status"],
            "latest_version": doc["versions"],
            "latest_sha256": current["sha256"],
            "title": doc["title"],
            "issuer": doc["issuer"],
        }
