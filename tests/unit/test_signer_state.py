"""The last-signature record lives in its own file, replaced atomically, checked on load,
carried over by ``civic node resync`` even when the chain database cannot be opened."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from civicledger.cli.main import cli
from civicledger.errors import CorruptionError
from civicledger.node.consensus import RecordSigned, encode_signed_record, load_signed_record
from civicledger.node.node import Node
from civicledger.node.signer_state import SignerState


def test_the_record_round_trips_and_damage_is_refused(tmp_path) -> None:
    state = SignerState(tmp_path)
    assert state.load() is None
    record = encode_signed_record(RecordSigned(7, 2, 3))
    state.save(record)
    assert state.load() == record
    state.save(encode_signed_record(RecordSigned(8, 0, 1)))
    assert load_signed_record(state.load()).height == 8
    assert not state.path.with_name("signer-state.tmp").exists()
    data = bytearray(state.path.read_bytes())
    data[0] ^= 1
    state.path.write_bytes(bytes(data))
    with pytest.raises(CorruptionError, match="could sign twice"):
        state.load()
    state.path.write_bytes(b"short")
    with pytest.raises(CorruptionError, match="damaged"):
        state.load()


def test_a_record_inside_an_older_database_is_moved_out(tmp_path, genesis, validator_key):
    record = encode_signed_record(RecordSigned(5, 1, 2))
    node = Node(tmp_path / "n", genesis, validator_key)
    node.store.set_meta("last_signed", record)
    node.close()
    node = Node(tmp_path / "n", genesis, validator_key)
    try:
        assert node.signer_state.load() == record
        assert node.store.get_meta("last_signed") is None
    finally:
        node.close()


def test_resync_carries_the_record_over_an_unreadable_database(tmp_path, genesis, validator_key):
    from civicledger.node.config import NodeConfig, render_config

    home = tmp_path / "home"
    node = Node(home / "data", genesis, validator_key)
    record = encode_signed_record(RecordSigned(12, 0, 3))
    node.signer_state.save(record)
    node.close()
    (home / "config.toml").write_text(render_config(NodeConfig(home=home)))
    db = home / "data" / "chain.db"
    db.write_bytes(bytes(100) + db.read_bytes()[100:])  # the header is gone
    result = CliRunner().invoke(cli, ["node", "resync", "--config", str(home / "config.toml")])
    assert result.exit_code == 0, result.output
    assert SignerState(home / "data").load() == record
    assert not (home / "data" / "chain.db").exists()
    assert list(tmp_path.glob("home/data.damaged-*/chain.db"))


def test_resync_refuses_when_the_record_is_damaged(tmp_path, genesis, validator_key):
    from civicledger.node.config import NodeConfig, render_config

    home = tmp_path / "home"
    Node(home / "data", genesis, validator_key).close()
    (home / "data" / "signer-state").write_bytes(b"not a record at all, far too long" * 2)
    (home / "config.toml").write_text(render_config(NodeConfig(home=home)))
    result = CliRunner().invoke(cli, ["node", "resync", "--config", str(home / "config.toml")])
    assert result.exit_code == 1 and "nothing was changed" in result.output
    assert (home / "data" / "chain.db").exists()
