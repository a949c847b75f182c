"""Organisations and roles: who may do what, decided on chain with full history.

An organisation (an agency, a bank, a registry) is registered by the validators, with its
admin keys: each validator sends the same registration, and it takes effect once those
that did hold more than two thirds of the power (at once on a single-validator network).
Its admins grant and revoke roles (``registrar``, ``issuer``, ``auditor``,
``central_bank``...) to addresses on behalf of the organisation. Any contract can ask
``ctx.has_role(role, address)``. Every change is a transaction: its receipt and the
sequential log (``log/<n>``) keep who did what, when and why.

State (under ``organisations/``): ``org/<id>`` → ``{"name", "admins", "created_by",
"created_at", "approved_by"}``; ``pending/<id>`` → ``{"name", "admins", "approvals",
"proposed_at"}`` while validators approve it (for at most ``REGISTRATION_TTL_BLOCKS``
blocks: a registration still waiting then gives way to the next one sent for that id, so
one validator cannot hold an id with a registration the others will not approve);
``role/<role>/<address hex>/<org>`` → ``{"org", "granted_by", "granted_at"}`` (each
organisation grants and revokes its own); ``log_size`` → int; ``log/<n>`` → ``{"action",
"org", "role", "address", "by", "height", "reason"}``.
"""

from __future__ import annotations

from civicledger.contracts.base import Args, Context, Contract, ViewContext, call, view
from civicledger.encoding import Value
from civicledger.errors import ContractError

__all__ = ["MAX_ADMINS", "REGISTRATION_TTL_BLOCKS", "Organisations", "role_key"]

MAX_ADMINS = 16
#: A registration waiting for validators lapses this many blocks after it was proposed.
REGISTRATION_TTL_BLOCKS = 10_000
MAX_LOG_PAGE = 100


def role_key(role: str, address: bytes, org: str = "") -> str:
    """``role/<role>/<address hex>/<org>``: one grant per organisation; without ``org``,
    the prefix of every organisation's grant of that role to that address."""
    return f"role/{role}/{address.hex()}/{org}"


def _identifier(args: Args, name: str) -> str:
    value = args.text(name, max_length=64)
    if not value or not value.replace("_", "a").replace("-", "a").isalnum() or not value.isascii():
        raise ContractError(
            f"argument {name!r} must be 1-64 ASCII letters, digits, '_' or '-'",
            code="bad_argument",
        )
    return value


class Organisations(Contract):
    name = "organisations"

    def _load(self, ctx: ViewContext, org_id: str) -> dict[str, Value]:
        org = ctx.get(f"org/{org_id}")
        if not isinstance(org, dict):
            raise ContractError(f"no organisation {org_id!r}", code="not_found")
        return org

    def _require_admin(self, ctx: Context, org_id: str) -> dict[str, Value]:
        org = self._load(ctx, org_id)
        admins = org["admins"]
        assert isinstance(admins, list)
        ctx.require(
            ctx.sender in admins,
            f"{ctx.sender.hex()} is not an admin of {org_id!r}",
            code="permission_denied",
        )
        return org

    def _log(self, ctx: Context, **entry: Value) -> None:
        n = ctx.get_int("log_size") + 1
        ctx.set("log_size", n)
        ctx.set(f"log/{n}", {**entry, "by": ctx.sender, "height": ctx.height})

    @call
    def register(self, ctx: Context, args: Args) -> Value:
        """Register an organisation with its admins. Validators each send the same
        registration; it takes effect once they hold more than two thirds of the power.
        Returns the organisation's id once registered, ``"pending"`` before."""
        org_id = _identifier(args, "id")
        name = args.text("name", max_length=200)
        admins: list[Value] = list(args.addresses("admins", max_count=MAX_ADMINS))
        args.check_no_extra()
        validators = ctx.get_validators()
        ctx.require(
            validators.get_power(ctx.sender_key) > 0,
            "only validators may register organisations",
            code="permission_denied",
        )
        ctx.require(not ctx.has(f"org/{org_id}"), f"{org_id!r} exists", code="duplicate")
        pending = ctx.get(f"pending/{org_id}")
        approvals: list[Value] = []
        proposed_at = ctx.height
        if isinstance(pending, dict):
            started = pending["proposed_at"]
            assert isinstance(started, int)
            if ctx.height > started + REGISTRATION_TTL_BLOCKS:
                ctx.emit("OrganisationRegistrationLapsed", id=org_id, proposed_at=started)
                pending = None  # lapsed: this registration starts afresh
        if isinstance(pending, dict):
            ctx.require(
                pending["name"] == name and pending["admins"] == admins,
                f"another registration of {org_id!r} is waiting for validators; send the same "
                "name and admins to approve it",
                code="conflict",
            )
            waiting = pending["approvals"]
            assert isinstance(waiting, list) and isinstance(pending["proposed_at"], int)
            approvals, proposed_at = list(waiting), pending["proposed_at"]
        ctx.require(
            bytes(ctx.sender_key) not in approvals,
            "you already approved this registration",
            code="duplicate",
        )
        approvals.append(bytes(ctx.sender_key))
        if not validators.has_supermajority(approvals):
            ctx.set(
                f"pending/{org_id}",
                {
                    "name": name,
                    "admins": admins,
                    "approvals": approvals,
                    "proposed_at": proposed_at,
                },
            )
            ctx.emit("OrganisationProposed", id=org_id, name=name, approvals=len(approvals))
            return "pending"
        if ctx.has(f"pending/{org_id}"):
            ctx.delete(f"pending/{org_id}")
        ctx.set("count", ctx.get_int("count") + 1)
        ctx.set(
            f"org/{org_id}",
            {
                "name": name,
                "admins": admins,
                "created_by": ctx.sender,
                "created_at": ctx.height,
                "approved_by": approvals,
            },
        )
        self._log(ctx, action="register", org=org_id, role="", address=b"", reason=name)
        ctx.emit("OrganisationRegistered", id=org_id, name=name)
        return org_id

    @call
    def set_admins(self, ctx: Context, args: Args) -> Value:
        """Replace an organisation's admins (its admins only)."""
        org_id = _identifier(args, "id")
        admins = args.addresses("admins", max_count=MAX_ADMINS)
        args.check_no_extra()
        org = self._require_admin(ctx, org_id)
        ctx.set(f"org/{org_id}", {**org, "admins": list(admins)})
        self._log(ctx, action="set_admins", org=org_id, role="", address=b"", reason="")
        ctx.emit("AdminsChanged", id=org_id, count=len(admins))
        return len(admins)

    def _change_role(self, ctx: Context, args: Args, action: str) -> None:
        """Grant or revoke a role on behalf of an organisation (its admins only); logged."""
        org_id = _identifier(args, "org")
        role = _identifier(args, "role")
        address = args.address("address")
        reason = args.text("reason", max_length=500, required=False)
        args.check_no_extra()
        self._require_admin(ctx, org_id)
        key = role_key(role, address, org_id)
        held = ctx.has(key)
        if action == "grant":
            where = f"{address.hex()} already holds {role!r} from {org_id!r}"
            ctx.require(not held, where, code="duplicate")
            ctx.set(key, {"org": org_id, "granted_by": ctx.sender, "granted_at": ctx.height})
        else:
            where = f"{address.hex()} does not hold {role!r} from {org_id!r}"
            ctx.require(held, where, code="not_found")
            ctx.delete(key)
        self._log(ctx, action=action, org=org_id, role=role, address=address, reason=reason)
        event = "RoleGranted" if action == "grant" else "RoleRevoked"
        ctx.emit(event, org=org_id, role=role, address=address)

    @call
    def grant(self, ctx: Context, args: Args) -> Value:
        """Give ``address`` a role on behalf of the organisation (its admins only)."""
        self._change_role(ctx, args, "grant")
        return None

    @call
    def revoke(self, ctx: Context, args: Args) -> Value:
        """Take a role the organisation granted away (its admins only)."""
        self._change_role(ctx, args, "revoke")
        return None

    @view
    def get(self, ctx: ViewContext, args: Args) -> Value:
        """An organisation and its admins."""
        org_id = _identifier(args, "id")
        args.check_no_extra()
        return {"id": org_id, **self._load(ctx, org_id)}

    @view
    def has_role(self, ctx: ViewContext, args: Args) -> Value:
        """Whether ``address`` holds ``role``; with ``org``, granted by that organisation."""
        role = _identifier(args, "role")
        address = args.address("address")
        org = _identifier(args, "org") if "org" in args.values else None
        args.check_no_extra()
        return ctx.has_role(role, address, org)

    @view
    def history(self, ctx: ViewContext, args: Args) -> Value:
        """The change log, newest first: up to 100 entries before ``before`` (default: all)."""
        size = ctx.get_int("log_size")
        before = args.integer("before", maximum=2**63 - 1) if "before" in args.values else size + 1
        args.check_no_extra()
        top = min(before - 1, size)
        return [ctx.get(f"log/{n}") for n in range(top, max(0, top - MAX_LOG_PAGE), -1)]
