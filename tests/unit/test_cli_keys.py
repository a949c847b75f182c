"""``civic keys``: the commands' outputs and their error path.

Every invocation sets ``CIVIC_SCRYPT_N=16`` so key files are cheap to create.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from civicledger.cli.main import cli
from civicledger.crypto.keys import KeyPair
from civicledger.crypto.keystore import Keystore

PASS = "s3cret passphrase"
SEED = bytes(range(32))
KP = KeyPair.from_seed(SEED)
HEX_RE = re.compile(r"[0-9a-f]+")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CIVIC_HOME", "CIVIC_PASSPHRASE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CIVIC_SCRYPT_N", "16")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "civic"


def run(
    home: Path | None,
    *args: str,
    input: str | None = None,
    env: dict[str, str | None] | None = None,
) -> Result:
    prefix = ["keys"] if home is None else ["keys", "--home", str(home)]
    return CliRunner().invoke(cli, [*prefix, *args], input=input, env=env)


def make_key(home: Path, name: str, seed: bytes = SEED) -> KeyPair:
    return Keystore(home / "keys", scrypt_n=16).create(name, PASS, seed=seed)


def field(output: str, label: str) -> str:
    match = re.search(rf"^{label}:\s+(\S+)$", output, re.MULTILINE)
    assert match is not None, f"no {label!r} line in {output!r}"
    return match.group(1)


def assert_error(result: Result, fragment: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: "), result.stderr
    assert fragment in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert isinstance(result.exception, SystemExit)


# -- new -----------------------------------------------------------------------------


def test_new_with_env_passphrase(home: Path) -> None:
    result = run(home, "new", "alice", env={"CIVIC_PASSPHRASE": PASS})
    assert result.exit_code == 0, result.output
    address = field(result.stdout, "address")
    public_key = field(result.stdout, "public key")
    assert HEX_RE.fullmatch(address) and len(address) == 40
    assert HEX_RE.fullmatch(public_key) and len(public_key) == 64
    loaded = Keystore(home / "keys").load("alice", PASS)
    assert loaded.address.hex() == address
    assert loaded.public_key.hex() == public_key
    assert loaded.seed.hex() not in result.output


def test_new_with_passphrase_file(home: Path, tmp_path: Path) -> None:
    file = tmp_path / "pw.txt"
    file.write_text(PASS + "\n")
    result = run(
        home, "new", "bob", "--passphrase-file", str(file), env={"CIVIC_PASSPHRASE": "ignored"}
    )
    assert result.exit_code == 0, result.output
    assert Keystore(home / "keys").load("bob", PASS).public_key.hex() == field(
        result.stdout, "public key"
    )


def test_new_prompts_twice(home: Path) -> None:
    result = run(home, "new", "carol", input=f"{PASS}\n{PASS}\n")
    assert result.exit_code == 0, result.output
    assert PASS not in result.output  # hidden input is not echoed
    assert Keystore(home / "keys").load("carol", PASS).address.hex() == field(
        result.stdout, "address"
    )


def test_new_prompt_mismatch_then_match(home: Path) -> None:
    result = run(home, "new", "carol", input=f"{PASS}\nother\n{PASS}\n{PASS}\n")
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    Keystore(home / "keys").load("carol", PASS)


def test_new_uses_civic_home(tmp_path: Path) -> None:
    result = run(None, "new", "alice", env={"CIVIC_HOME": str(tmp_path), "CIVIC_PASSPHRASE": PASS})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "keys" / "alice.key").is_file()


def test_new_duplicate_is_an_error(home: Path) -> None:
    make_key(home, "alice")
    before = (home / "keys" / "alice.key").read_bytes()
    result = run(home, "new", "alice", env={"CIVIC_PASSPHRASE": PASS})
    assert_error(result, "already exists")
    assert (home / "keys" / "alice.key").read_bytes() == before


def test_new_duplicate_fails_before_prompting(home: Path) -> None:
    make_key(home, "alice")
    result = run(home, "new", "alice", input="")
    assert_error(result, "already exists")
    assert "Passphrase" not in result.output


def test_new_invalid_name_is_an_error(home: Path) -> None:
    result = run(home, "new", "bad/name", env={"CIVIC_PASSPHRASE": PASS})
    assert_error(result, "invalid key name 'bad/name'")
    assert not (home / "keys").exists()


def test_new_missing_passphrase_file_is_an_error(home: Path, tmp_path: Path) -> None:
    result = run(home, "new", "alice", "--passphrase-file", str(tmp_path / "absent"))
    assert_error(result, "cannot read passphrase file")


# -- list ----------------------------------------------------------------------------


def test_list_shows_a_table_sorted_by_name(home: Path) -> None:
    bob = make_key(home, "bob")
    alice = make_key(home, "alice", seed=bytes(32))
    result = run(home, "list")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for header in ("name", "address", "public key"):
        assert header in out
    # Full values, never truncated, even though CliRunner's output is not a terminal.
    for kp in (alice, bob):
        assert kp.address.hex() in out
        assert kp.public_key.hex() in out
    assert "…" not in out
    assert out.index("alice") < out.index("bob")
    alice_line = next(line for line in out.splitlines() if "alice" in line)
    assert alice.address.hex() in alice_line
    assert alice.public_key.hex() in alice_line


def test_list_empty(home: Path) -> None:
    result = run(home, "list")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("no keys in ")
    assert str(home / "keys") in result.stdout


def test_list_corrupt_file_is_an_error(home: Path) -> None:
    make_key(home, "alice")
    (home / "keys" / "broken.key").write_text("garbage")
    assert_error(run(home, "list"), "broken.key")


# -- show ----------------------------------------------------------------------------


def test_show(home: Path) -> None:
    make_key(home, "alice")
    result = run(home, "show", "alice")
    assert result.exit_code == 0, result.output
    assert field(result.stdout, "name") == "alice"
    assert field(result.stdout, "address") == KP.address.hex()
    assert field(result.stdout, "public key") == KP.public_key.hex()
    assert field(result.stdout, "file") == str(home / "keys" / "alice.key")
    assert SEED.hex() not in result.output
    ciphertext = json.loads((home / "keys" / "alice.key").read_text())["ciphertext"]
    assert ciphertext not in result.output


def test_show_missing_key_is_an_error(home: Path) -> None:
    assert_error(run(home, "show", "ghost"), "no key named 'ghost'")


# -- export-public -------------------------------------------------------------------


def test_export_public(home: Path) -> None:
    make_key(home, "alice")
    result = run(home, "export-public", "alice")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "name": "alice",
        "address": KP.address.hex(),
        "public_key": KP.public_key.hex(),
    }


def test_export_public_missing_key_is_an_error(home: Path) -> None:
    result = run(home, "export-public", "ghost")
    assert_error(result, "ghost.key")


def test_export_public_tampered_file_is_an_error(home: Path) -> None:
    make_key(home, "alice")
    path = home / "keys" / "alice.key"
    data = json.loads(path.read_text())
    data["address"] = "00" * 20
    path.write_text(json.dumps(data))
    assert_error(run(home, "export-public", "alice"), "address does not match")


def test_keys_is_registered_with_help() -> None:
    result = CliRunner().invoke(cli, ["keys", "--help"])
    assert result.exit_code == 0, result.output
    for command in ("new", "list", "show", "export-public"):
        assert command in result.stdout
    assert "--home" in result.stdout
