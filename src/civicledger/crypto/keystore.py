"""Private keys encrypted at rest.

A keystore is a directory (by default ``$CIVIC_HOME/keys``, with ``CIVIC_HOME``
defaulting to ``~/.civic``) holding one JSON file per key, named ``<name>.key``. The
directory is created with mode ``0700`` and every key file with mode ``0600``. Files are
written atomically: to a temporary file in the same directory, flushed and fsynced, then
moved into place (without ever overwriting an existing key), and the directory is fsynced.

A key file (format version 1) looks like this::

    {
      "version": 1,
      "name": "alice",
      "address": "<40 hex digits>",
      "public_key": "<64 hex digits>",
      "kdf": {"name": "scrypt", "salt": "<32 hex digits>", "n": 32768, "r": 8, "p": 1},
      "cipher": {"name": "chacha20-poly1305", "nonce": "<24 hex digits>"},
      "ciphertext": "<96 hex digits>"
    }

Encryption:

* The passphrase (normalised to Unicode NFC, encoded as UTF-8) is stretched with scrypt
  (``n``, ``r``, ``p`` and a random 16-byte salt, all stored in the file so the cost can
  be raised later without breaking old files) into a 32-byte key.
* The 32-byte Ed25519 seed is encrypted with ChaCha20-Poly1305 under that key and a
  random 12-byte nonce. ``ciphertext`` is the encrypted seed followed by the 16-byte tag.
* The header (version, name, address, public key, every KDF parameter and the cipher
  name) is bound as associated data, in the canonical form returned by
  ``_KeyFile.associated_data``. Editing, or swapping in from another file, any of these
  fields makes decryption fail, so a file cannot be made to claim another name or key.

A decryption failure cannot tell a wrong passphrase from a modified file; both raise
``WrongPassphrase``. After decryption the public key derived from the seed is checked
against the header as well.

The address and public key are stored in clear, so listing keys needs no passphrase.

Scrypt cost for new files: ``n = 2**15`` by default. ``Keystore(..., scrypt_n=...)`` or,
when that is not given, the environment variable ``CIVIC_SCRYPT_N`` (a power of two)
overrides it. This exists so that tests run fast; a low ``n`` makes the passphrase much
easier to brute-force, so never set it for real keys. Files always record the ``n`` they
were written with, and reading a file ignores ``CIVIC_SCRYPT_N``.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import json
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from civicledger.crypto.keys import KeyPair, compute_address
from civicledger.errors import DecodeError, KeystoreError, WrongPassphrase
from civicledger.types import (
    ADDRESS_SIZE,
    PUBLIC_KEY_SIZE,
    parse_hex,
    parse_public_key,
)

__all__ = [
    "DEFAULT_SCRYPT_N",
    "DEFAULT_SCRYPT_P",
    "DEFAULT_SCRYPT_R",
    "FORMAT_VERSION",
    "KeyInfo",
    "Keystore",
    "default_home",
    "default_keystore_dir",
    "resolve_passphrase",
    "validate_name",
]

FORMAT_VERSION = 1
KDF_NAME = "scrypt"
CIPHER_NAME = "chacha20-poly1305"

DEFAULT_SCRYPT_N = 2**15
DEFAULT_SCRYPT_R = 8
DEFAULT_SCRYPT_P = 1

#: Environment variable overriding scrypt ``n`` for *new* files (tests only).
SCRYPT_N_ENV = "CIVIC_SCRYPT_N"
#: Environment variable naming the Civic Ledger home directory.
HOME_ENV = "CIVIC_HOME"
#: Default environment variable holding a passphrase.
PASSPHRASE_ENV = "CIVIC_PASSPHRASE"

SALT_SIZE = 16
NONCE_SIZE = 12
KEY_SIZE = 32
SEED_SIZE = 32
TAG_SIZE = 16
SUFFIX = ".key"

# Bounds on KDF parameters read from a file, so a hostile file cannot make us allocate
# unbounded memory or spin forever (scrypt uses about 128 * n * r bytes).
_MAX_N = 2**20
_MAX_R = 32
_MAX_P = 16
_MAX_SCRYPT_MEMORY = 2**30

_AD_DOMAIN = b"civic-ledger/keystore/v1\x00"
_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def default_home() -> Path:
    """The Civic Ledger home directory: ``$CIVIC_HOME``, else ``~/.civic``."""
    return Path(os.environ.get(HOME_ENV) or "~/.civic").expanduser()


def default_keystore_dir() -> Path:
    """The default keystore directory: ``<home>/keys``."""
    return default_home() / "keys"


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid key name (1-64 characters of ``[A-Za-z0-9_.-]``)."""
    if not isinstance(name, str) or _NAME_RE.fullmatch(name) is None:
        raise KeystoreError(
            f"invalid key name {name!r}: use 1 to 64 characters among letters, digits, "
            "'_', '.' and '-'"
        )
    return name


def _check_scrypt_params(n: int, r: int, p: int) -> None:
    if n < 2 or n > _MAX_N or n & (n - 1):
        raise ValueError(f"scrypt n must be a power of two between 2 and {_MAX_N}, got {n}")
    if not 1 <= r <= _MAX_R:
        raise ValueError(f"scrypt r must be between 1 and {_MAX_R}, got {r}")
    if not 1 <= p <= _MAX_P:
        raise ValueError(f"scrypt p must be between 1 and {_MAX_P}, got {p}")
    if 128 * n * r > _MAX_SCRYPT_MEMORY:
        raise ValueError(f"scrypt n={n}, r={r} would need more than 1 GiB of memory")


def _scrypt_n_from_env() -> int | None:
    raw = os.environ.get(SCRYPT_N_ENV)
    if raw is None or raw.strip() == "":
        return None
    try:
        n = int(raw.strip())
        _check_scrypt_params(n, DEFAULT_SCRYPT_R, DEFAULT_SCRYPT_P)
    except ValueError as exc:
        raise KeystoreError(f"invalid {SCRYPT_N_ENV}={raw!r}: {exc}") from None
    return n


def _derive_key(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    return Scrypt(salt=salt, length=KEY_SIZE, n=n, r=r, p=p).derive(secret)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """Public facts about a stored key; reading them needs no passphrase."""

    name: str
    address: str
    public_key: str
    path: Path


@dataclass(frozen=True, slots=True)
class _KeyFile:
    """The parsed content of a key file."""

    version: int
    name: str
    address: bytes
    public_key: bytes
    salt: bytes
    n: int
    r: int
    p: int
    nonce: bytes
    ciphertext: bytes

    def associated_data(self) -> bytes:
        """The canonical header bound to the ciphertext."""
        header = {
            "version": self.version,
            "name": self.name,
            "address": self.address.hex(),
            "public_key": self.public_key.hex(),
            "kdf": {
                "name": KDF_NAME,
                "salt": self.salt.hex(),
                "n": self.n,
                "r": self.r,
                "p": self.p,
            },
            "cipher": {"name": CIPHER_NAME},
        }
        return _AD_DOMAIN + json.dumps(header, sort_keys=True, separators=(",", ":")).encode()

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "name": self.name,
            "address": self.address.hex(),
            "public_key": self.public_key.hex(),
            "kdf": {
                "name": KDF_NAME,
                "salt": self.salt.hex(),
                "n": self.n,
                "r": self.r,
                "p": self.p,
            },
            "cipher": {"name": CIPHER_NAME, "nonce": self.nonce.hex()},
            "ciphertext": self.ciphertext.hex(),
        }

    @classmethod
    def parse(cls, data: object) -> _KeyFile:
        """Validate the JSON content of a key file; raises ``ValueError`` with a reason."""
        obj = _as_dict(data, "the file")
        version = _get_int(obj, "version", "the file")
        if version != FORMAT_VERSION:
            raise ValueError(f"unsupported version {version} (expected {FORMAT_VERSION})")
        name = _get_str(obj, "name", "the file")
        if _NAME_RE.fullmatch(name) is None:
            raise ValueError(f"invalid name {name!r}")
        address = _get_hex(obj, "address", "the file", ADDRESS_SIZE)
        public_key = _get_hex(obj, "public_key", "the file", PUBLIC_KEY_SIZE)
        if compute_address(parse_public_key(public_key)) != address:
            raise ValueError("the address does not match the public key")

        kdf = _as_dict(obj.get("kdf"), "kdf")
        if kdf.get("name") != KDF_NAME:
            raise ValueError(f"unsupported kdf {kdf.get('name')!r} (expected {KDF_NAME!r})")
        salt = _get_hex(kdf, "salt", "kdf", SALT_SIZE)
        n = _get_int(kdf, "n", "kdf")
        r = _get_int(kdf, "r", "kdf")
        p = _get_int(kdf, "p", "kdf")
        _check_scrypt_params(n, r, p)

        cipher = _as_dict(obj.get("cipher"), "cipher")
        if cipher.get("name") != CIPHER_NAME:
            raise ValueError(
                f"unsupported cipher {cipher.get('name')!r} (expected {CIPHER_NAME!r})"
            )
        nonce = _get_hex(cipher, "nonce", "cipher", NONCE_SIZE)
        ciphertext = _get_hex(obj, "ciphertext", "the file", SEED_SIZE + TAG_SIZE)
        return cls(version, name, address, public_key, salt, n, r, p, nonce, ciphertext)


def _as_dict(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where} is not a JSON object")
    return value


def _get_int(obj: dict[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{where}: field {key!r} is missing or not an integer")
    return value


def _get_str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{where}: field {key!r} is missing or not a string")
    return value


def _get_hex(obj: dict[str, Any], key: str, where: str, size: int) -> bytes:
    text = _get_str(obj, key, where)
    try:
        return parse_hex(text, what=f"field {key!r}", size=size)
    except DecodeError as exc:
        raise ValueError(f"{where}: {exc.message}") from None


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


class Keystore:
    """A directory of passphrase-encrypted key files."""

    def __init__(self, directory: Path | str, *, scrypt_n: int | None = None) -> None:
        """Open the keystore at ``directory`` (created on the first ``create``).

        ``scrypt_n`` sets the scrypt cost for new files; when ``None``, ``CIVIC_SCRYPT_N``
        is used if set, else ``DEFAULT_SCRYPT_N``. Lowering it is for tests only.
        """
        self.directory = Path(directory).expanduser()
        if scrypt_n is not None:
            _check_scrypt_params(scrypt_n, DEFAULT_SCRYPT_R, DEFAULT_SCRYPT_P)
        self._scrypt_n = scrypt_n

    def __repr__(self) -> str:
        return f"Keystore({str(self.directory)!r})"

    def path_of(self, name: str) -> Path:
        """The file that holds (or would hold) the key ``name``."""
        return self.directory / f"{validate_name(name)}{SUFFIX}"

    def exists(self, name: str) -> bool:
        """True if a key named ``name`` is stored."""
        return self.path_of(name).exists()

    # -- writing ---------------------------------------------------------------------

    def create(self, name: str, passphrase: str, *, seed: bytes | None = None) -> KeyPair:
        """Generate (or take from ``seed``) a key pair and store it encrypted as ``name``.

        Refuses a name that is already used; never overwrites a file.
        """
        path = self.path_of(name)
        if path.exists():
            raise KeystoreError(f"a key named {name!r} already exists ({path})")
        if not isinstance(passphrase, str) or passphrase == "":
            raise KeystoreError("the passphrase must not be empty")
        if seed is None:
            keypair = KeyPair.generate()
        else:
            try:
                keypair = KeyPair.from_seed(seed)
            except ValueError as exc:
                raise KeystoreError(f"invalid seed: {exc}") from None

        n = self._scrypt_n if self._scrypt_n is not None else _scrypt_n_from_env()
        unsealed = _KeyFile(
            version=FORMAT_VERSION,
            name=name,
            address=bytes(keypair.address),
            public_key=bytes(keypair.public_key),
            salt=secrets.token_bytes(SALT_SIZE),
            n=n if n is not None else DEFAULT_SCRYPT_N,
            r=DEFAULT_SCRYPT_R,
            p=DEFAULT_SCRYPT_P,
            nonce=secrets.token_bytes(NONCE_SIZE),
            ciphertext=b"",
        )
        key = _derive_key(passphrase, unsealed.salt, unsealed.n, unsealed.r, unsealed.p)
        ciphertext = ChaCha20Poly1305(key).encrypt(
            unsealed.nonce, keypair.seed, unsealed.associated_data()
        )
        sealed = dataclasses.replace(unsealed, ciphertext=ciphertext)
        content = json.dumps(sealed.to_json(), indent=2) + "\n"
        self._write_new(path, content.encode("utf-8"))
        return keypair

    def _ensure_directory(self) -> None:
        if self.directory.is_dir():
            return
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)  # mkdir's mode is subject to the umask
        except OSError as exc:
            raise KeystoreError(
                f"cannot create keystore directory {self.directory}: {exc.strerror}"
            ) from None

    def _write_new(self, path: Path, content: bytes) -> None:
        """Write ``content`` to ``path`` atomically, failing if ``path`` exists."""
        self._ensure_directory()
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                if hasattr(os, "fchmod"):
                    os.fchmod(fd, 0o600)
                view = memoryview(content)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                # A hard link is an atomic "rename unless the target exists".
                os.link(tmp, path)
            except FileExistsError:
                raise KeystoreError(f"a key named {path.stem!r} already exists ({path})") from None
            except OSError:
                # The file system has no hard links: fall back to an atomic replace.
                if path.exists():
                    raise KeystoreError(
                        f"a key named {path.stem!r} already exists ({path})"
                    ) from None
                os.replace(tmp, path)
        except OSError as exc:
            raise KeystoreError(f"cannot write key file {path}: {exc.strerror}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _fsync_directory(self.directory)

    # -- reading ---------------------------------------------------------------------

    def _read(self, path: Path, expected_name: str) -> _KeyFile:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise KeystoreError(
                f"no key named {expected_name!r} in {self.directory} ({path} not found)"
            ) from None
        except OSError as exc:
            raise KeystoreError(f"cannot read key file {path}: {exc.strerror}") from None
        try:
            keyfile = _KeyFile.parse(json.loads(raw.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise KeystoreError(f"{path} is not a Civic Ledger key file (not JSON)") from None
        except ValueError as exc:
            raise KeystoreError(f"{path} is not a valid Civic Ledger key file: {exc}") from None
        if keyfile.name != expected_name:
            raise KeystoreError(f"{path} holds a key named {keyfile.name!r}, not {expected_name!r}")
        return keyfile

    def load(self, name: str, passphrase: str) -> KeyPair:
        """Decrypt and return the key pair stored as ``name``."""
        path = self.path_of(name)
        keyfile = self._read(path, name)
        key = _derive_key(passphrase, keyfile.salt, keyfile.n, keyfile.r, keyfile.p)
        try:
            seed = ChaCha20Poly1305(key).decrypt(
                keyfile.nonce, keyfile.ciphertext, keyfile.associated_data()
            )
        except InvalidTag:
            raise WrongPassphrase(
                f"wrong passphrase for key {name!r}: cannot decrypt {path} "
                "(if the passphrase is right, the file has been modified)"
            ) from None
        keypair = KeyPair.from_seed(seed)
        if keypair.public_key != keyfile.public_key:
            raise KeystoreError(f"{path}: the decrypted key does not match its public key")
        return keypair

    def info(self, name: str) -> KeyInfo:
        """Public facts about the key ``name`` (no passphrase needed)."""
        path = self.path_of(name)
        keyfile = self._read(path, name)
        return KeyInfo(name, keyfile.address.hex(), keyfile.public_key.hex(), path)

    def list(self) -> builtins.list[KeyInfo]:
        """Every stored key, sorted by name. An absent directory holds no keys."""
        if not self.directory.is_dir():
            return []
        try:
            paths = [p for p in self.directory.iterdir() if p.name.endswith(SUFFIX)]
        except OSError as exc:
            raise KeystoreError(f"cannot list {self.directory}: {exc.strerror}") from None
        infos = []
        for path in paths:
            name = path.name[: -len(SUFFIX)]
            if _NAME_RE.fullmatch(name) is None or not path.is_file():
                continue  # not a file this keystore could have written
            keyfile = self._read(path, name)
            infos.append(KeyInfo(name, keyfile.address.hex(), keyfile.public_key.hex(), path))
        return sorted(infos, key=lambda info: info.name)


def resolve_passphrase(
    *,
    passphrase: str | None = None,
    env_var: str | None = PASSPHRASE_ENV,
    file: Path | str | None = None,
    prompt: bool = True,
    confirm: bool = False,
    prompt_text: str = "Passphrase",
) -> str:
    """Find the passphrase to use, in this order:

    1. ``passphrase``, if given;
    2. the first line of ``file`` (without its line ending), if given;
    3. the environment variable ``env_var``, if set and not empty;
    4. an interactive prompt with hidden input (asked twice when ``confirm``), if
       ``prompt``.

    Raises ``KeystoreError`` if none of these yields a passphrase.
    """
    if passphrase is not None:
        return passphrase
    if file is not None:
        path = Path(file).expanduser()
        try:
            with path.open(encoding="utf-8", newline="") as handle:
                line = handle.readline()
        except OSError as exc:
            raise KeystoreError(f"cannot read passphrase file {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise KeystoreError(f"passphrase file {path} is not UTF-8 text") from None
        line = line.removesuffix("\n").removesuffix("\r")
        if line == "":
            raise KeystoreError(f"passphrase file {path} is empty (the first line is used)")
        return line
    if env_var:
        value = os.environ.get(env_var)
        if value:
            return value
    if prompt:
        text: str = click.prompt(
            prompt_text, hide_input=True, confirmation_prompt=confirm, err=True
        )
        return text
    sources = "give a passphrase file"
    if env_var:
        sources += f" or set {env_var}"
    raise KeystoreError(f"no passphrase available: {sources}")
