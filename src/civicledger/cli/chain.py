"""``civic tx``, ``doc``, ``account``, ``block`` and ``receipt``: using a running network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from civicledger.chain.block import ValidatorSet
from civicledger.chain.genesis import load_genesis
from civicledger.chain.proof import ReceiptProof, verify_receipt_proof
from civicledger.chain.transaction import DEFAULT_FUEL_LIMIT
from civicledger.cli.common import (
    CliError,
    LedgerGroup,
    client_of,
    echo_json,
    key_options,
    load_key,
    node_option,
)
from civicledger.client import sha256_file
from civicledger.crypto.keys import compute_address
from civicledger.encoding import Value
from civicledger.errors import DecodeError, InvalidProof
from civicledger.jsonvalue import json_to_value
from civicledger.types import parse_hex

__all__ = ["account", "block", "contract", "doc", "receipt", "state", "tx"]


def _send(
    node_url: str,
    home: Path | None,
    key_name: str,
    passphrase_file: Path | None,
    contract: str,
    method: str,
    args: dict[str, Value],
    *,
    wait: bool = True,
    fuel_limit: int = DEFAULT_FUEL_LIMIT,
    expiry: int = 0,
) -> dict[str, Any]:
    key = load_key(home, key_name, passphrase_file)
    with client_of(node_url) as client:
        result = client.send(
            key, contract, method, args, wait=wait, fuel_limit=fuel_limit, expiry=expiry
        )
    receipt = result.get("receipt")
    if receipt and receipt["status"] != "ok":
        echo_json(result)
        raise CliError(
            f"transaction {result['tx_id']} failed in block {result['height']}: "
            f"{receipt['error_code']}: {receipt['error_message']}"
        )
    return result


def _summary(result: dict[str, Any]) -> str:
    if result.get("status") == "pending":
        return f"submitted {result['tx_id']} (pending)"
    receipt = result["receipt"]
    return (
        f"committed {result['tx_id']} in block {result['height']} "
        f"(fuel {receipt['fuel_used']}, result {json.dumps(receipt['result'])})"
    )


def _save_or_print(obj: Any, output: Path | None, saved: str) -> None:
    """Print ``obj`` as JSON, or save it to ``output`` and say ``saved``."""
    text = json.dumps(obj, indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(saved)


def _read_offline(
    file: Path, what: str, genesis: Path | None
) -> tuple[Any, ValidatorSet | None, str | None]:
    """A saved proof's JSON, the validators to trust and the chain they are for (from
    ``--genesis``), for offline verification."""
    try:
        obj = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CliError(f"{file} is not a JSON {what}: {exc}") from None
    if genesis is None:
        return obj, None, None
    loaded = load_genesis(genesis)
    return obj, loaded.validators, loaded.chain_id


def _same_chain(header_chain: str, genesis_chain: str | None) -> None:
    """With ``--genesis``, the proof must be of that genesis file's chain (networks may
    share validator keys: a test network's proof must not pass for production)."""
    if genesis_chain is not None and header_chain != genesis_chain:
        raise InvalidProof(
            f"the proof is of chain {header_chain!r}; the genesis file is of {genesis_chain!r}"
        )


def genesis_option(fn: Any) -> Any:
    return click.option(
        "--genesis",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help=(
            "Trust only the validators of this genesis file (and the validator-set "
            "handoffs the proof carries, each signed by the set before it)."
        ),
    )(fn)


def _address(text: str) -> bytes:
    return parse_hex(text, what="address", size=20)


# -- tx ------------------------------------------------------------------------------


@click.group(cls=LedgerGroup)
def tx() -> None:
    """Send transactions and follow them."""


@tx.command("send")
@click.argument("contract")
@click.argument("method")
@click.option("--args", "args_json", default="{}", help="Arguments as JSON, e.g. '{\"n\": 1}'.")
@click.option("--fuel", "fuel_limit", default=DEFAULT_FUEL_LIMIT, show_default=True, type=int)
@click.option("--expiry", default=0, type=int, help="Last height to include it (0: none).")
@click.option("--no-wait", is_flag=True, help="Return once submitted, without the receipt.")
@key_options
@node_option
def tx_send(
    contract: str,
    method: str,
    args_json: str,
    fuel_limit: int,
    expiry: int,
    no_wait: bool,
    key_name: str,
    home: Path | None,
    passphrase_file: Path | None,
    node_url: str,
) -> None:
    """Call METHOD of CONTRACT in a signed transaction."""
    try:
        parsed = json.loads(args_json)
    except json.JSONDecodeError as exc:
        raise CliError(f"--args is not JSON: {exc}") from None
    args = json_to_value(parsed)
    if not isinstance(args, dict):
        raise CliError("--args must be a JSON object")
    result = _send(
        node_url,
        home,
        key_name,
        passphrase_file,
        contract,
        method,
        args,
        wait=not no_wait,
        fuel_limit=fuel_limit,
        expiry=expiry,
    )
    click.echo(_summary(result))


@tx.command("status")
@click.argument("tx_id")
@node_option
def tx_status(tx_id: str, node_url: str) -> None:
    """Show a transaction, its status and its receipt."""
    with client_of(node_url) as client:
        echo_json(client.transaction(tx_id))


# -- doc -----------------------------------------------------------------------------


@click.group(cls=LedgerGroup)
def doc() -> None:
    """Tamper-evident documents: one version of the truth.

    Files never leave your machine: only their SHA-256 goes on chain.
    """


@doc.command("register")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--id", "doc_id", required=True, help="Identifier, e.g. decree-2026-17.")
@click.option("--title", required=True, help="Public title (no personal data).")
@click.option("--note", default="", help="Public note for this version.")
@key_options
@node_option
def doc_register(
    file: Path,
    doc_id: str,
    title: str,
    note: str,
    key_name: str,
    home: Path | None,
    passphrase_file: Path | None,
    node_url: str,
) -> None:
    """Register FILE as version 1 of a new document."""
    args: dict[str, Value] = {"id": doc_id, "sha256": sha256_file(file), "title": title}
    if note:
        args["note"] = note
    result = _send(node_url, home, key_name, passphrase_file, "documents", "register", args)
    click.echo(_summary(result))


@doc.command("update")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--id", "doc_id", required=True)
@click.option("--note", default="", help="Why this version supersedes the last one.")
@key_options
@node_option
def doc_update(
    file: Path,
    doc_id: str,
    note: str,
    key_name: str,
    home: Path | None,
    passphrase_file: Path | None,
    node_url: str,
) -> None:
    """Publish FILE as the new current version of a document."""
    args: dict[str, Value] = {"id": doc_id, "sha256": sha256_file(file)}
    if note:
        args["note"] = note
    result = _send(node_url, home, key_name, passphrase_file, "documents", "update", args)
    click.echo(_summary(result))


@doc.command("revoke")
@click.option("--id", "doc_id", required=True)
@click.option("--reason", required=True)
@key_options
@node_option
def doc_revoke(
    doc_id: str,
    reason: str,
    key_name: str,
    home: Path | None,
    passphrase_file: Path | None,
    node_url: str,
) -> None:
    """Withdraw a document: no version of it is current any more."""
    args: dict[str, Value] = {"id": doc_id, "reason": reason}
    result = _send(node_url, home, key_name, passphrase_file, "documents", "revoke", args)
    click.echo(_summary(result))


@doc.command("history")
@click.argument("doc_id")
@node_option
def doc_history(doc_id: str, node_url: str) -> None:
    """Every version of a document, oldest first."""
    with client_of(node_url) as client:
        echo_json(client.query("documents", "history", {"id": doc_id}))


@doc.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@node_option
def doc_verify(file: Path, node_url: str) -> None:
    """Is FILE registered, and is it the current version? (Exit 1 if not current.)"""
    digest = sha256_file(file)
    with client_of(node_url) as client:
        found = client.query("documents", "lookup", {"sha256": digest})
    # The verdict is the answer, on standard output; the exit status says whether the file
    # is the current version (0) or not (1), for scripts.
    if not found["registered"]:
        click.echo(f"NOT REGISTERED: {file} (sha256 {digest.hex()}) is not on the ledger")
        raise click.exceptions.Exit(1)
    where = f"{found['id']!r} version {found['version']} of {found['latest_version']}"
    if found["current"]:
        click.echo(f"CURRENT: {file} is {where}, {found['title']!r}")
        return
    if found["status"] != "active":
        click.echo(f"REVOKED: {file} is {where}; the document was revoked")
    else:
        click.echo(
            f"SUPERSEDED: {file} is {where}; the current version has sha256 "
            f"{found['latest_sha256']['$bytes']}"
        )
    raise click.exceptions.Exit(1)


# -- account -------------------------------------------------------------------------


@click.group(cls=LedgerGroup)
def account() -> None:
    """The native currency: balances, transfers, minting by issuers."""


@account.command("mint")
@click.option("--to", "to", required=True, help="Address to credit.")
@click.option("--amount", required=True, type=click.IntRange(min=1))
@key_options
@node_option
def account_mint(
    to: str,
    amount: int,
    key_name: str,
    home: Path | None,
    passphrase_file: Path | None,
    node_url: str,
) -> None:
    """Create new units (issuers only)."""
    args: dict[str, Value] = {"to": _address(to), "amount": amount}
    result = _send(node_url, home, key_name, passphrase_file, "accounts", "mint", args)
    click.echo(_summary(result))


@account.command("transfer")
@click.option("--to", "to", required=True, help="Address to pay.")
@click.option("--amount", required=True, type=click.IntRange(min=1))
@key_options
@node_option
def account_transfer(
    to: str,
    amount: int,
    key_name: str,
    home: Path | None,
    passphrase_file: Path | None,
    node_url: str,
) -> None:
    """Pay AMOUNT to another address."""
    args: dict[str, Value] = {"to": _address(to), "amount": amount}
    result = _send(node_url, home, key_name, passphrase_file, "accounts", "transfer", args)
    click.echo(_summary(result))


@account.command("balance")
@click.argument("address")
@node_option
def account_balance(address: str, node_url: str) -> None:
    """Balance and nonce of ADDRESS."""
    _address(address)
    with client_of(node_url) as client:
        info = client.account(address)
    click.echo(f"{info['address']}  balance {info['balance']}  nonce {info['nonce']}")


# -- block ---------------------------------------------------------------------------


@click.group(cls=LedgerGroup)
def block() -> None:
    """Read blocks."""


@block.command("show")
@click.argument("height", default="head")
@click.option("--txs", is_flag=True, help="Include transactions and receipts.")
@node_option
def block_show(height: str, txs: bool, node_url: str) -> None:
    """Show block HEIGHT (a number, a 64-hex-digit hash, or 'head')."""
    with client_of(node_url) as client:
        if height != "head" and not height.isdigit():
            parse_hex(height, what="block hash", size=32)
            height = f"hash/{height}"
        echo_json(client.block(height, txs=txs))


# -- receipt -------------------------------------------------------------------------


@click.group(cls=LedgerGroup)
def receipt() -> None:
    """Receipts that anyone can verify offline."""


@receipt.command("get")
@click.argument("tx_id")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Save to this file."
)
@node_option
def receipt_get(tx_id: str, output: Path | None, node_url: str) -> None:
    """Fetch the receipt of TX_ID with its proofs."""
    with client_of(node_url) as client:
        proof = client.proof(tx_id)
    _save_or_print(proof, output, f"saved receipt of {tx_id} to {output}")


@receipt.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@genesis_option
def receipt_verify(file: Path, genesis: Path | None) -> None:
    """Verify a saved receipt offline: no node is contacted."""
    obj, trusted, chain_id = _read_offline(file, "receipt", genesis)
    try:
        proof = ReceiptProof.from_json(obj)
        _same_chain(proof.header.chain_id, chain_id)
        verify_receipt_proof(proof, trusted_validators=trusted)
    except (DecodeError, InvalidProof) as exc:
        raise CliError(f"INVALID: {exc.message}") from None
    header = proof.header
    signers = ", ".join(compute_address(s.public_key).hex() for s in proof.commit.signatures)
    status = "succeeded" if proof.receipt.ok else f"failed ({proof.receipt.error_code})"
    click.echo(f"VALID: transaction {proof.transaction.tx_id.hex()} {status}")
    click.echo(f"  chain {header.chain_id}, block {header.height} ({header.hash.hex()})")
    click.echo(
        f"  call {proof.transaction.contract}.{proof.transaction.method} by "
        f"{proof.transaction.sender_address.hex()}"
    )
    click.echo(f"  signed by validators: {signers}")
    if trusted is not None and proof.handoffs:
        click.echo(f"  followed {len(proof.handoffs)} validator-set handoff(s) from genesis")
    if trusted is None:
        click.echo(
            "  note: checked against the validator set named in the block; pass --genesis "
            "to pin the validators you trust"
        )


# -- state ---------------------------------------------------------------------------


@click.group(cls=LedgerGroup)
def state() -> None:
    """Contract state with proofs anyone can verify offline."""


@state.command("get")
@click.argument("contract")
@click.argument("key")
@click.option(
    "--height",
    type=click.IntRange(min=1),
    help="The block after which to read the key (default: the head; recent heights only).",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Save to this file."
)
@node_option
def state_get(
    contract: str, key: str, height: int | None, output: Path | None, node_url: str
) -> None:
    """Fetch KEY of CONTRACT with its proof (e.g. accounts balance/<address>)."""
    with client_of(node_url) as client:
        bundle = client.state_proof(contract, key, height)
    _save_or_print(
        bundle,
        output,
        f"saved the proof of {contract}/{key} at height {bundle['height']} to {output}",
    )


@state.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@genesis_option
def state_verify(file: Path, genesis: Path | None) -> None:
    """Verify a saved state proof offline: no node is contacted."""
    from civicledger.encoding import decode
    from civicledger.jsonvalue import value_to_json
    from civicledger.state.bundle import StateProofBundle, verify_state_bundle

    obj, trusted, chain_id = _read_offline(file, "state proof", genesis)
    try:
        bundle = StateProofBundle.from_json(obj)
        _same_chain(bundle.header.chain_id, chain_id)
        verify_state_bundle(bundle, trusted_validators=trusted)
    except (DecodeError, InvalidProof) as exc:
        raise CliError(f"INVALID: {exc.message}") from None
    where = f"{bundle.contract}/{bundle.key} at block {bundle.header.height}"
    if bundle.proof.value is None:
        click.echo(f"VALID: {where} is absent")
    else:
        shown = json.dumps(value_to_json(decode(bundle.proof.value)))
        click.echo(f"VALID: {where} = {shown}")
    if trusted is None:
        click.echo(
            "  note: checked against the validator set named in the block; pass --genesis "
            "to pin the validators you trust"
        )
    elif bundle.handoffs:
        click.echo(f"  followed {len(bundle.handoffs)} validator-set handoff(s) from genesis")


# -- contract ------------------------------------------------------------------------


@click.group(cls=LedgerGroup)
def contract() -> None:
    """Deploy user contracts and approve them on behalf of an organisation."""


@contract.command("deploy")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="The contract's name: [a-z][a-z0-9_]*.")
@click.option("--note", default="", help="Public note for this version.")
@key_options
@node_option
def contract_deploy(
    file: Path,
    name: str,
    note: str,
    key_name: str,
    home: Path | None,
    passphrase_file: Path | None,
    node_url: str,
) -> None:
    """Deploy FILE as a new version of contract NAME (pending until approved)."""
    from civicledger.contracts.sandbox import compile_contract

    source = file.read_text(encoding="utf-8")
    compile_contract(source, name=name)  # the same checks the chain makes, before paying
    args: dict[str, Value] = {"name": name, "source": source}
    if note:
        args["note"] = note
    result = _send(
        node_url,
        home,
        key_name,
        passphrase_file,
        "contracts",
        "deploy",
        args,
        fuel_limit=20_000_000,
    )
    version = result["receipt"]["result"]["version"]
    click.echo(f"deployed {name} version {version}: {_summary(result)}")


@contract.command("approve")
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@click.option("--org", default="", help="Organisation you approve for (its admin's key).")
@key_options
@node_option
def contract_approve(
    name: str,
    version: int,
    org: str,
    key_name: str,
    home: Path | None,
    passphrase_file: Path | None,
    node_url: str,
) -> None:
    """Approve VERSION of contract NAME."""
    args: dict[str, Value] = {"name": name, "version": version}
    if org:
        args["org"] = org
    result = _send(node_url, home, key_name, passphrase_file, "contracts", "approve", args)
    click.echo(f"{name} version {version} is {result['receipt']['result']}")


@contract.command("show")
@click.argument("name")
@node_option
def contract_show(name: str, node_url: str) -> None:
    """Every version of contract NAME with its approvals."""
    with client_of(node_url) as client:
        echo_json(client.query("contracts", "get", {"name": name}))


@contract.command("scheduled")
@click.argument("schedule_id")
@node_option
def contract_scheduled(schedule_id: str, node_url: str) -> None:
    """A call a contract scheduled (its id is what ctx.schedule returned): waiting, with
    what runs when, or ran, with its block and receipt."""
    with client_of(node_url) as client:
        echo_json(client.scheduled(schedule_id))


CONTRACT_TEMPLATE = '''"""{title}: a Civic Ledger contract.

Methods marked @call run in signed transactions; @view methods answer queries.
Only a safe, deterministic subset of Python is accepted: see docs/guides/first-contract.md.
"""


class {cls}:
    @call
    def add(self, ctx, args):
        """Add n to the total (1 <= n <= 100)."""
        n = args.integer("n", minimum=1, maximum=100)
        require(n != 13, "13 is not allowed")
        total = ctx.get_int("total") + n
        ctx.set("total", total)
        ctx.emit("Added", n=n, total=total, by=ctx.sender)
        return total

    @view
    def total(self, ctx, args):
        return ctx.get_int("total")
'''

TEST_TEMPLATE = '''"""Tests of the {name} contract on an in-memory chain: civic contract test."""

from pathlib import Path

from civicledger.testing import LocalChain

SOURCE = Path(__file__).with_name("{name}.py")


def test_add_accumulates():
    chain = LocalChain()
    assert chain.deploy_file("{name}", SOURCE).ok
    assert chain.call("{name}", "add", {{"n": 2}}).result == 2
    assert chain.call("{name}", "add", {{"n": 3}}).result == 5
    assert chain.query("{name}", "total") == 5


def test_a_failed_requirement_is_a_failed_receipt():
    chain = LocalChain()
    chain.deploy_file("{name}", SOURCE)
    receipt = chain.call("{name}", "add", {{"n": 13}})
    assert not receipt.ok
    assert "13 is not allowed" in receipt.error_message
    assert chain.query("{name}", "total") == 0
'''


@contract.command("new")
@click.argument("name")
@click.option(
    "--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path(".")
)
def contract_new(name: str, directory: Path) -> None:
    """Scaffold NAME.py (a contract) and test_NAME.py (its tests)."""
    if not (
        name.isascii()
        and name[:1].isalpha()
        and name.islower()
        and name.replace("_", "a").isalnum()
    ):
        raise CliError("a contract name must match [a-z][a-z0-9_]{0,63}")
    directory.mkdir(parents=True, exist_ok=True)
    source, test = directory / f"{name}.py", directory / f"test_{name}.py"
    for path in (source, test):
        if path.exists():
            raise CliError(f"{path} exists")
    cls = "".join(part.capitalize() for part in name.split("_"))
    source.write_text(CONTRACT_TEMPLATE.format(title=cls, cls=cls))
    test.write_text(TEST_TEMPLATE.format(name=name))
    click.echo(f"created {source} and {test}; run: civic contract test {directory}")


@contract.command("test")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
def contract_test(paths: tuple[Path, ...]) -> None:
    """Run contract tests (pytest) against an in-memory chain."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("pytest") is None:
        raise CliError("contract tests run with pytest: pip install pytest")
    targets = [str(p) for p in paths] or ["."]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *targets], check=False
    )
    raise SystemExit(result.returncode)
