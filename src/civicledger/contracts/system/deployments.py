"""Deploying user contracts: code on chain, callable once the organisations approve it.

``deploy(name, source)`` checks and compiles the source in the sandbox (so only code that
would run is accepted), stores it on chain (split in chunks, addressed by its SHA-256)
and records version ``n`` of ``name`` as *pending*. The network's policy (genesis
``contracts``, state ``$sys/contracts/policy``) may set a fee per source byte, burnt from
the deployer's native balance, and may make deployment *open* (public networks): then a
version is active at once, and only the account that deployed version 1 of a name may
deploy later versions of it. Admins of organisations approve it on
their organisation's behalf; once more than half of the registered organisations have
approved (or, while no organisation is registered, validators holding more than two
thirds of the power), the version becomes
the *active* one: transactions and queries to ``name`` run it. An upgrade is a new
version through the same approval; it keeps the contract's state (state is keyed by the
contract's name). Every version stays on chain with who deployed and who approved it.

State (under ``contracts/``): ``latest/<name>`` → n; ``version/<name>/<n>`` → the version
record; ``active/<name>`` → ``{"version", "code_hash"}``; ``source/<hash hex>/<i>`` → a
chunk of the UTF-8 source, ``source/<hash hex>/count`` → the number of chunks.
"""

from __future__ import annotations

import hashlib

from civicledger.contracts.base import Args, Context, Contract, ViewContext, call, view
from civicledger.encoding import Value
from civicledger.errors import ContractError
from civicledger.state.system import CONTRACT_POLICY_KEY

__all__ = ["CONTRACT_NAME", "SOURCE_CHUNK", "Deployments", "load_source"]

CONTRACT_NAME = "contracts"
#: Source is stored in chunks of this many bytes (a state value is at most 16 KiB).
SOURCE_CHUNK = 12 * 1024
MAX_SOURCE = 40 * 1024
FUEL_PER_SOURCE_BYTE = 20
SYSTEM_NAMES = frozenset(
    {"accounts", "documents", "evidence", "governance", "organisations", CONTRACT_NAME}
)


def _name(args: Args) -> str:
    name = args.text("name", max_length=64)
    if not (
        name
        and name.isascii()
        and name[0].isalpha()
        and name.islower()
        and name.replace("_", "a").isalnum()
    ):
        raise ContractError("argument 'name' must match [a-z][a-z0-9_]{0,63}", code="bad_argument")
    if name in SYSTEM_NAMES:
        raise ContractError(f"{name!r} is a system contract", code="bad_argument")
    return name


def load_source(get: object, code_hash: bytes) -> str | None:
    """Reassemble a stored source from a ``get(key: str) -> Value`` function."""
    read = get  # a ViewContext.get-like callable
    assert callable(read)
    count = read(f"source/{code_hash.hex()}/count")
    if not isinstance(count, int):
        return None
    chunks = [read(f"source/{code_hash.hex()}/{i}") for i in range(count)]
    if not all(isinstance(c, bytes) for c in chunks):
        return None
    raw = b"".join(c for c in chunks if isinstance(c, bytes))
    if hashlib.sha256(raw).digest() != code_hash:
        return None
    return raw.decode("utf-8")


class Deployments(Contract):
    name = CONTRACT_NAME

    @call
    def deploy(self, ctx: Context, args: Args) -> Value:
        """Store a new version of contract ``name``; it waits for approval."""
        from civicledger.contracts.sandbox import compile_contract

        name = _name(args)
        source = args.text("source", max_length=MAX_SOURCE)
        note = args.text("note", max_length=500, required=False)
        args.check_no_extra()
        raw = source.encode("utf-8")
        ctx.fuel.charge(FUEL_PER_SOURCE_BYTE * len(raw))
        policy = ctx.get_system(CONTRACT_POLICY_KEY)
        open_deployment = isinstance(policy, dict) and policy.get("deployment") == "open"
        fee_per_byte = policy.get("fee_per_byte", 0) if isinstance(policy, dict) else 0
        assert isinstance(fee_per_byte, int)
        if open_deployment and ctx.get_int(f"latest/{name}") > 0:
            first = ctx.get(f"version/{name}/1")
            owner = first.get("deployer") if isinstance(first, dict) else None
            ctx.require(
                owner == ctx.sender,
                f"{name!r} belongs to {owner.hex() if isinstance(owner, bytes) else 'another'}"
                "; only its first deployer may deploy new versions",
                code="permission_denied",
            )
        # Only code that compiles in the sandbox is accepted (deterministic everywhere).
        compile_contract(source, name=name)
        fee = fee_per_byte * len(raw)
        ctx.burn_fee(fee)
        code_hash = hashlib.sha256(raw).digest()
        if not ctx.has(f"source/{code_hash.hex()}/count"):
            chunks = [raw[i : i + SOURCE_CHUNK] for i in range(0, len(raw), SOURCE_CHUNK)]
            for i, chunk in enumerate(chunks):
                ctx.set(f"source/{code_hash.hex()}/{i}", chunk)
            ctx.set(f"source/{code_hash.hex()}/count", len(chunks))
        version = ctx.get_int(f"latest/{name}") + 1
        ctx.set(f"latest/{name}", version)
        ctx.set(
            f"version/{name}/{version}",
            {
                "version": version,
                "code_hash": code_hash,
                "deployer": ctx.sender,
                "deployed_at": ctx.height,
                "note": note,
                "approvals": [],
                "status": "pending",
                "activated_at": None,
                "fee": fee,
            },
        )
        ctx.emit("ContractDeployed", name=name, version=version, code_hash=code_hash, fee=fee)
        if open_deployment:
            self._activate(ctx, name, version, "open")
        return {"name": name, "version": version, "code_hash": code_hash}

    @call
    def approve(self, ctx: Context, args: Args) -> Value:
        """Approve a pending version on behalf of an organisation (one of its admins), or,
        while no organisation is registered, as a validator."""
        name = _name(args)
        version = args.integer("version", minimum=1, maximum=2**31)
        org = args.text("org", max_length=64, required=False)
        args.check_no_extra()
        record = ctx.get(f"version/{name}/{version}")
        if not isinstance(record, dict):
            raise ContractError(f"no version {version} of {name!r}", code="not_found")
        ctx.require(record["status"] == "pending", f"version {version} is {record['status']!s}")
        active = ctx.get(f"active/{name}")
        if isinstance(active, dict):
            current = active["version"]
            assert isinstance(current, int)
            # Approving never rolls the code back.
            ctx.require(
                version > current,
                f"version {version} is older than the active version {current}",
                code="superseded",
            )
        approvals = record["approvals"]
        assert isinstance(approvals, list)
        organisations = ctx.get_from("organisations", "count") or 0
        assert isinstance(organisations, int)
        validators = ctx.get_validators()
        if organisations == 0:
            ctx.require(
                validators.get_power(ctx.sender_key) > 0,
                "with no organisation registered, validators approve contracts",
                code="permission_denied",
            )
            approver = f"validator:{ctx.sender_key.hex()}"
        else:
            ctx.require(
                bool(org), "name the organisation you approve for ('org')", code="bad_argument"
            )
            entry = ctx.get_from("organisations", f"org/{org}")
            admins = entry.get("admins") if isinstance(entry, dict) else None
            ctx.require(
                isinstance(admins, list) and ctx.sender in admins,
                f"{ctx.sender.hex()} is not an admin of organisation {org!r}",
                code="permission_denied",
            )
            approver = org
        ctx.require(approver not in approvals, f"{approver!r} already approved", code="duplicate")
        approvals = [*approvals, approver]
        record = {**record, "approvals": approvals}
        ctx.emit("ContractApproved", name=name, version=version, by=approver)
        ctx.set(f"version/{name}/{version}", record)
        if organisations == 0:
            keys = [
                bytes.fromhex(a.removeprefix("validator:"))
                for a in approvals
                if isinstance(a, str) and a.startswith("validator:")
            ]
            approved = validators.has_supermajority(keys)
        else:
            # Approvals given by validators while no organisation was registered do not
            # count towards the organisations' majority.
            orgs = [a for a in approvals if isinstance(a, str) and not a.startswith("validator:")]
            approved = 2 * len(orgs) > organisations
        if approved:
            return self._activate(ctx, name, version, None)
        return record["status"]

    def _activate(self, ctx: Context, name: str, version: int, approver: str | None) -> str:
        """Make ``version`` the active code of ``name``; the previous one is superseded."""
        previous = ctx.get(f"active/{name}")
        if isinstance(previous, dict):
            old = previous["version"]
            assert isinstance(old, int)
            old_record = ctx.get(f"version/{name}/{old}")
            if isinstance(old_record, dict):
                ctx.set(f"version/{name}/{old}", {**old_record, "status": "superseded"})
        record = ctx.get(f"version/{name}/{version}")
        assert isinstance(record, dict)
        approvals = record["approvals"]
        assert isinstance(approvals, list)
        if approver is not None:
            approvals = [*approvals, approver]
        record = {**record, "approvals": approvals, "status": "active", "activated_at": ctx.height}
        ctx.set(f"version/{name}/{version}", record)
        ctx.set(f"active/{name}", {"version": version, "code_hash": record["code_hash"]})
        ctx.emit("ContractActivated", name=name, version=version)
        return "active"

    @view
    def get(self, ctx: ViewContext, args: Args) -> Value:
        """Every version of a contract, with who deployed and approved it."""
        name = _name(args)
        args.check_no_extra()
        latest = ctx.get_int(f"latest/{name}")
        if latest == 0:
            raise ContractError(f"no contract {name!r}", code="not_found")
        versions = [ctx.get(f"version/{name}/{n}") for n in range(1, latest + 1)]
        return {"name": name, "active": ctx.get(f"active/{name}"), "versions": versions}

    @view
    def source(self, ctx: ViewContext, args: Args) -> Value:
        """The source of a version (anyone can read and re-hash what runs)."""
        name = _name(args)
        version = args.integer("version", minimum=1, maximum=2**31)
        args.check_no_extra()
        record = ctx.get(f"version/{name}/{version}")
        if not isinstance(record, dict) or not isinstance(record["code_hash"], bytes):
            raise ContractError(f"no version {version} of {name!r}", code="not_found")
        text = load_source(ctx.get, record["code_hash"])
        if text is None:
            raise ContractError("the stored source is missing or damaged", code="corrupted")
        return text
