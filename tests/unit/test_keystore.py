"""The encrypted keystore: round trips, tampering, permissions, names, passphrases.

Keystores here use ``scrypt_n=16`` (the ``Keystore`` parameter) so tests are fast; the
default cost is checked separately on the file format.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from civicledger.crypto.keys import KeyPair
from civicledger.crypto.keystore import (
    DEFAULT_SCRYPT_N,
    KeyInfo,
    Keystore,
    default_home,
    default_keystore_dir,
    resolve_passphrase,
)
from civicledger.errors import KeystoreError, LedgerError, WrongPassphrase

FAST_N = 16
PASS = "correct horse battery staple"
SEED = bytes(range(32))

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CIVIC_HOME", "CIVIC_PASSPHRASE", "CIVIC_SCRYPT_N"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def store(tmp_path: Path) -> Keystore:
    return Keystore(tmp_path / "keys", scrypt_n=FAST_N)


def _read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data))


# -- round trip ----------------------------------------------------------------------


def test_create_then_load_gives_the_same_key(store: Keystore) -> None:
    created = store.create("alice", PASS)
    loaded = store.load("alice", PASS)
    assert loaded.public_key == created.public_key
    assert loaded.seed == created.seed
    assert loaded.address == created.address


def test_create_with_seed_stores_that_seed(store: Keystore) -> None:
    created = store.create("alice", PASS, seed=SEED)
    assert created.public_key == KeyPair.from_seed(SEED).public_key
    assert store.load("alice", PASS).seed == SEED


def test_create_generates_distinct_keys(store: Keystore) -> None:
    a = store.create("a", PASS)
    b = store.create("b", PASS)
    assert a.public_key != b.public_key


def test_unicode_passphrase_is_normalised(store: Keystore) -> None:
    composed = "caf\u00e9"  # é as one code point
    decomposed = "cafe\u0301"  # e + combining acute accent
    store.create("alice", composed, seed=SEED)
    assert store.load("alice", decomposed).seed == SEED


# -- file format ---------------------------------------------------------------------


def test_file_format_fields(store: Keystore) -> None:
    kp = store.create("alice", PASS, seed=SEED)
    path = store.directory / "alice.key"
    data = _read(path)
    assert set(data) == {
        "version",
        "name",
        "address",
        "public_key",
        "kdf",
        "cipher",
        "ciphertext",
    }
    assert data["version"] == 1
    assert data["name"] == "alice"
    assert data["address"] == kp.address.hex()
    assert data["public_key"] == kp.public_key.hex()
    assert data["kdf"]["name"] == "scrypt"
    assert (data["kdf"]["n"], data["kdf"]["r"], data["kdf"]["p"]) == (FAST_N, 8, 1)
    assert len(bytes.fromhex(data["kdf"]["salt"])) == 16
    assert data["cipher"]["name"] == "chacha20-poly1305"
    assert len(bytes.fromhex(data["cipher"]["nonce"])) == 12
    ciphertext = bytes.fromhex(data["ciphertext"])
    assert len(ciphertext) == 32 + 16
    assert SEED.hex() not in path.read_text()
    assert SEED not in ciphertext


def test_salt_and_nonce_are_fresh_per_file(store: Keystore) -> None:
    store.create("a", PASS, seed=SEED)
    store.create("b", PASS, seed=SEED)
    a, b = _read(store.directory / "a.key"), _read(store.directory / "b.key")
    assert a["kdf"]["salt"] != b["kdf"]["salt"]
    assert a["cipher"]["nonce"] != b["cipher"]["nonce"]
    assert a["ciphertext"] != b["ciphertext"]


def test_default_scrypt_cost(tmp_path: Path) -> None:
    Keystore(tmp_path).create("alice", PASS, seed=SEED)
    assert _read(tmp_path / "alice.key")["kdf"]["n"] == DEFAULT_SCRYPT_N == 2**15


def test_scrypt_n_env_var_applies_to_new_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CIVIC_SCRYPT_N", "32")
    store = Keystore(tmp_path)
    store.create("alice", PASS, seed=SEED)
    assert _read(tmp_path / "alice.key")["kdf"]["n"] == 32
    # Reading follows the file, not the variable.
    monkeypatch.setenv("CIVIC_SCRYPT_N", "64")
    assert store.load("alice", PASS).seed == SEED


def test_scrypt_parameter_beats_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIVIC_SCRYPT_N", "32")
    Keystore(tmp_path, scrypt_n=64).create("alice", PASS)
    assert _read(tmp_path / "alice.key")["kdf"]["n"] == 64


@pytest.mark.parametrize("value", ["100", "1", "abc", str(2**30)])
def test_bad_scrypt_n_env_var_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CIVIC_SCRYPT_N", value)
    with pytest.raises(KeystoreError, match="CIVIC_SCRYPT_N"):
        Keystore(tmp_path).create("alice", PASS)
    assert not (tmp_path / "alice.key").exists()


@pytest.mark.parametrize("n", [0, 3, 100, 2**21])
def test_bad_scrypt_n_parameter_is_refused(tmp_path: Path, n: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        Keystore(tmp_path, scrypt_n=n)


# -- wrong passphrase and tampering ------------------------------------------------------


def test_wrong_passphrase(store: Keystore) -> None:
    store.create("alice", PASS)
    with pytest.raises(WrongPassphrase, match="wrong passphrase for key 'alice'") as info:
        store.load("alice", PASS + "!")
    assert info.value.code == "wrong_passphrase"
    assert isinstance(info.value, KeystoreError)


def test_flipped_ciphertext_byte_is_detected(store: Keystore) -> None:
    store.create("alice", PASS)
    path = store.directory / "alice.key"
    data = _read(path)
    ciphertext = bytearray.fromhex(data["ciphertext"])
    ciphertext[5] ^= 0x01
    data["ciphertext"] = ciphertext.hex()
    _write(path, data)
    with pytest.raises(WrongPassphrase):
        store.load("alice", PASS)


def test_flipped_nonce_is_detected(store: Keystore) -> None:
    store.create("alice", PASS)
    path = store.directory / "alice.key"
    data = _read(path)
    nonce = bytearray.fromhex(data["cipher"]["nonce"])
    nonce[0] ^= 0x80
    data["cipher"]["nonce"] = nonce.hex()
    _write(path, data)
    with pytest.raises(WrongPassphrase):
        store.load("alice", PASS)


def test_swapped_public_key_and_address_fail_through_associated_data(store: Keystore) -> None:
    # Replace the (consistent) address and public key with another key's: the header
    # checks pass, so only the associated data can catch it. (The post-decryption
    # check would raise a plain KeystoreError, not WrongPassphrase.)
    store.create("alice", PASS)
    other = KeyPair.from_seed(SEED)
    path = store.directory / "alice.key"
    data = _read(path)
    data["public_key"] = other.public_key.hex()
    data["address"] = other.address.hex()
    _write(path, data)
    assert store.info("alice").public_key == other.public_key.hex()  # header looks fine
    with pytest.raises(WrongPassphrase):
        store.load("alice", PASS)


def test_swapped_public_key_alone_is_refused(store: Keystore) -> None:
    store.create("alice", PASS)
    path = store.directory / "alice.key"
    data = _read(path)
    data["public_key"] = KeyPair.from_seed(SEED).public_key.hex()
    _write(path, data)
    with pytest.raises(KeystoreError, match="address does not match"):
        store.load("alice", PASS)
    with pytest.raises(KeystoreError, match=r"alice\.key"):
        store.info("alice")


def test_renamed_key_fails_through_associated_data(store: Keystore) -> None:
    # Copy alice's file to bob.key and change the name inside: without the name in the
    # associated data this would load alice's key under the name bob.
    store.create("alice", PASS)
    data = _read(store.directory / "alice.key")
    data["name"] = "bob"
    _write(store.directory / "bob.key", data)
    with pytest.raises(WrongPassphrase):
        store.load("bob", PASS)


def test_renamed_file_without_name_change_is_refused(store: Keystore) -> None:
    store.create("alice", PASS)
    (store.directory / "alice.key").rename(store.directory / "bob.key")
    with pytest.raises(KeystoreError, match="named 'alice', not 'bob'"):
        store.load("bob", PASS)


def test_changed_kdf_parameter_is_detected(store: Keystore) -> None:
    store.create("alice", PASS)
    path = store.directory / "alice.key"
    data = _read(path)
    data["kdf"]["n"] = FAST_N * 2
    _write(path, data)
    with pytest.raises(WrongPassphrase):
        store.load("alice", PASS)


# -- corrupt and missing files ----------------------------------------------------------


def test_missing_key_names_the_file(store: Keystore) -> None:
    with pytest.raises(KeystoreError, match="no key named 'ghost'") as info:
        store.load("ghost", PASS)
    assert "ghost.key" in info.value.message
    assert not isinstance(info.value, WrongPassphrase)
    with pytest.raises(KeystoreError, match=r"ghost\.key"):
        store.info("ghost")


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.update(version=2), "unsupported version 2"),
        (lambda d: d.update(version=True), "'version'"),
        (lambda d: d.pop("ciphertext"), "'ciphertext'"),
        (lambda d: d.update(ciphertext="zz"), "not valid hex"),
        (lambda d: d.update(ciphertext="00" * 47), "must be 48 bytes"),
        (lambda d: d["kdf"].update(name="pbkdf2"), "unsupported kdf"),
        (lambda d: d["kdf"].update(n=2**24), "scrypt n"),
        (lambda d: d["kdf"].update(r=0), "scrypt r"),
        (lambda d: d["kdf"].update(salt="00"), "must be 16 bytes"),
        (lambda d: d["cipher"].update(name="aes-gcm"), "unsupported cipher"),
        (lambda d: d.update(cipher=[]), "cipher is not a JSON object"),
        (lambda d: d.update(name="bad name"), "invalid name"),
    ],
)
def test_corrupt_file_names_the_file(store: Keystore, mutate: Any, reason: str) -> None:
    store.create("alice", PASS)
    path = store.directory / "alice.key"
    data = _read(path)
    mutate(data)
    _write(path, data)
    with pytest.raises(KeystoreError) as info:
        store.load("alice", PASS)
    assert str(path) in info.value.message
    assert reason in info.value.message
    assert not isinstance(info.value, WrongPassphrase)


@pytest.mark.parametrize("content", [b"", b"not json", b"\xff\xfe", b"[1, 2]"])
def test_non_key_file_names_the_file(store: Keystore, content: bytes) -> None:
    store.create("alice", PASS)
    path = store.directory / "alice.key"
    path.write_bytes(content)
    with pytest.raises(KeystoreError, match="is not a") as info:
        store.load("alice", PASS)
    assert str(path) in info.value.message


# -- permissions and atomic writes ------------------------------------------------------


@posix_only
def test_file_and_directory_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = Keystore(tmp_path / "home" / "keys", scrypt_n=FAST_N)
        store.create("alice", PASS)
    finally:
        os.umask(old)
    assert stat.S_IMODE((store.directory / "alice.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700


def test_no_temporary_files_are_left(store: Keystore) -> None:
    store.create("alice", PASS)
    store.create("bob", PASS)
    assert sorted(p.name for p in store.directory.iterdir()) == ["alice.key", "bob.key"]


# -- names ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "Alice_01", "node-1.validator", "x" * 64, "..", "-k"])
def test_valid_names(store: Keystore, name: str) -> None:
    store.create(name, PASS)
    assert (store.directory / f"{name}.key").is_file()
    assert store.info(name).name == name


@pytest.mark.parametrize(
    "name", ["", "x" * 65, "a b", "a/b", "../evil", "é", "a\x00b", "a:b", "a\nb"]
)
def test_invalid_names_are_refused(store: Keystore, name: str) -> None:
    with pytest.raises(KeystoreError, match="invalid key name"):
        store.create(name, PASS)
    with pytest.raises(KeystoreError, match="invalid key name"):
        store.load(name, PASS)
    assert not store.directory.exists() or list(store.directory.iterdir()) == []


def test_duplicate_name_is_refused_and_file_kept(store: Keystore) -> None:
    first = store.create("alice", PASS)
    before = (store.directory / "alice.key").read_bytes()
    with pytest.raises(KeystoreError, match="already exists"):
        store.create("alice", "another passphrase")
    assert (store.directory / "alice.key").read_bytes() == before
    assert store.load("alice", PASS).public_key == first.public_key


def test_empty_passphrase_is_refused(store: Keystore) -> None:
    with pytest.raises(KeystoreError, match="must not be empty"):
        store.create("alice", "")
    assert not store.exists("alice")


def test_bad_seed_is_refused(store: Keystore) -> None:
    with pytest.raises(KeystoreError, match="invalid seed"):
        store.create("alice", PASS, seed=b"short")


# -- list and info -------------------------------------------------------------------


def test_list_is_sorted_and_needs_no_passphrase(store: Keystore) -> None:
    created = {name: store.create(name, PASS) for name in ["mallory", "alice", "Zed", "bob"]}
    infos = store.list()
    assert [i.name for i in infos] == ["Zed", "alice", "bob", "mallory"]
    for info in infos:
        assert info == KeyInfo(
            name=info.name,
            address=created[info.name].address.hex(),
            public_key=created[info.name].public_key.hex(),
            path=store.directory / f"{info.name}.key",
        )


def test_list_of_absent_directory_is_empty(tmp_path: Path) -> None:
    store = Keystore(tmp_path / "nowhere")
    assert store.list() == []
    assert not (tmp_path / "nowhere").exists()


def test_list_ignores_other_files(store: Keystore) -> None:
    store.create("alice", PASS)
    (store.directory / "notes.txt").write_text("hello")
    (store.directory / "bad name.key").write_text("{}")
    assert [i.name for i in store.list()] == ["alice"]


def test_list_reports_a_corrupt_key_file(store: Keystore) -> None:
    store.create("alice", PASS)
    (store.directory / "broken.key").write_text("{}")
    with pytest.raises(KeystoreError, match=r"broken\.key"):
        store.list()


def test_info(store: Keystore) -> None:
    kp = store.create("alice", PASS, seed=SEED)
    info = store.info("alice")
    assert info.address == kp.address.hex()
    assert info.public_key == kp.public_key.hex()
    assert info.path == store.directory / "alice.key"
    with pytest.raises(AttributeError):
        info.name = "bob"  # type: ignore[misc]


# -- default locations ---------------------------------------------------------------


def test_default_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert default_home() == Path("~/.civic").expanduser()
    monkeypatch.setenv("CIVIC_HOME", str(tmp_path))
    assert default_home() == tmp_path
    assert default_keystore_dir() == tmp_path / "keys"


# -- resolve_passphrase --------------------------------------------------------------


def test_passphrase_explicit_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "pw"
    file.write_text("from-file\n")
    monkeypatch.setenv("CIVIC_PASSPHRASE", "from-env")
    assert resolve_passphrase(passphrase="explicit", file=file) == "explicit"


def test_passphrase_file_beats_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "pw"
    file.write_text("first line \r\nsecond line\n")
    monkeypatch.setenv("CIVIC_PASSPHRASE", "from-env")
    assert resolve_passphrase(file=file, prompt=False) == "first line "


def test_passphrase_file_without_newline(tmp_path: Path) -> None:
    file = tmp_path / "pw"
    file.write_text("secret")
    assert resolve_passphrase(file=str(file), prompt=False) == "secret"


def test_passphrase_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIVIC_PASSPHRASE", "from-env")
    assert resolve_passphrase(prompt=False) == "from-env"
    monkeypatch.setenv("OTHER_VAR", "other")
    assert resolve_passphrase(env_var="OTHER_VAR", prompt=False) == "other"


def test_passphrase_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="cannot read passphrase file"):
        resolve_passphrase(file=tmp_path / "absent", prompt=False)


def test_passphrase_empty_file(tmp_path: Path) -> None:
    file = tmp_path / "pw"
    file.write_text("\nsecond\n")
    with pytest.raises(KeystoreError, match="is empty"):
        resolve_passphrase(file=file, prompt=False)


def test_no_passphrase_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIVIC_PASSPHRASE", "")  # empty counts as unset
    with pytest.raises(KeystoreError, match=r"no passphrase available.*CIVIC_PASSPHRASE"):
        resolve_passphrase(prompt=False)


def test_passphrase_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def fake_prompt(text: str, **kwargs: Any) -> str:
        calls.append({"text": text, **kwargs})
        return "typed"

    monkeypatch.setattr("click.prompt", fake_prompt)
    assert resolve_passphrase(confirm=True) == "typed"
    assert calls[0]["hide_input"] is True
    assert calls[0]["confirmation_prompt"] is True


def test_errors_are_ledger_errors(store: Keystore) -> None:
    with pytest.raises(LedgerError):
        store.load("ghost", PASS)
