"""Chaos checkers on hand-made observations: each one is shown to pass and to fail."""

from __future__ import annotations

from civicledger.chaos.checkers import (
    BlockRecord,
    LivenessRecord,
    NodeRecord,
    Observations,
    check_agreement,
    check_durability,
    check_evidence,
    check_liveness,
    check_no_equivocation,
    check_state,
    check_validity,
    run_checks,
)

KEY_A, KEY_B, KEY_C = b"\xaa" * 32, b"\xbb" * 32, b"\xcc" * 32
TX1, TX2 = b"\x01" * 32, b"\x02" * 32


def block(height: int, tag: int = 0, *, txs: tuple[bytes, ...] = (), root: int = 0) -> BlockRecord:
    return BlockRecord(
        height=height,
        hash=bytes([height, tag]) * 16,
        state_root=bytes([height, root]) * 16,
        signers=(KEY_A, KEY_B, KEY_C),
        tx_ids=txs,
    )


def chain(length: int = 3) -> list[BlockRecord]:
    return [block(0), block(1, txs=(TX1,)), block(2, txs=(TX2,))][:length]


def healthy() -> Observations:
    return Observations(
        nodes=[NodeRecord(i, True, chain(), supply=100) for i in range(3)],
        acknowledged={TX1: 1, TX2: 2},
        expected_supply=100,
        liveness=LivenessRecord(1.0, 3.0),
        honest_keys=(KEY_A, KEY_B, KEY_C),
    )


def test_chaos_checkers_pass_on_a_healthy_run() -> None:
    results = run_checks(healthy())
    assert [r.passed for r in results] == [True, True, True, True, True, True, None]


def test_chaos_agreement_fails_on_a_fork() -> None:
    obs = healthy()
    obs.nodes[2].blocks[2] = block(2, tag=9, txs=(TX2,))
    result = check_agreement(obs)
    assert result.passed is False
    assert "fork at height 2" in result.reason and "node2" in result.reason


def test_chaos_agreement_ignores_byzantine_nodes() -> None:
    obs = healthy()
    obs.nodes[2].blocks[2] = block(2, tag=9)
    obs.nodes[2].honest = False
    assert check_agreement(obs).passed is True


def test_chaos_validity_fails_when_verify_fails() -> None:
    obs = healthy()
    obs.nodes[1].verify_problem = "height 2: commit certificate: not enough power"
    result = check_validity(obs)
    assert result.passed is False and "node1" in result.reason


def test_chaos_durability_fails_on_a_lost_transaction() -> None:
    obs = healthy()
    obs.nodes[0].blocks = chain(2)  # lacks TX2
    result = check_durability(obs)
    assert result.passed is False and "lacks 1 acknowledged" in result.reason


def test_chaos_durability_fails_on_a_transaction_committed_twice() -> None:
    obs = healthy()
    obs.nodes[1].blocks.append(block(3, txs=(TX1,)))
    result = check_durability(obs)
    assert result.passed is False and "2 times" in result.reason


def test_chaos_state_fails_on_different_roots_at_one_height() -> None:
    obs = healthy()
    obs.nodes[0].blocks[1] = BlockRecord(1, block(1).hash, b"\x77" * 32, tx_ids=(TX1,))
    result = check_state(obs)
    assert result.passed is False and "height 1" in result.reason


def test_chaos_state_fails_when_supply_changes() -> None:
    obs = healthy()
    obs.nodes[2].supply = 99
    result = check_state(obs)
    assert result.passed is False and "total supply 99" in result.reason


def test_chaos_liveness_fails_without_progress_or_catch_up() -> None:
    obs = healthy()
    obs.liveness = LivenessRecord(None, None)
    assert check_liveness(obs).passed is False
    obs.liveness = LivenessRecord(2.0, None)
    result = check_liveness(obs)
    assert result.passed is False and "caught up" in result.reason
    obs.liveness = LivenessRecord(31.0, 40.0)
    assert check_liveness(obs).passed is False
    obs.liveness = LivenessRecord(None, None, "the partition is never healed")
    assert check_liveness(obs).passed is None


def test_chaos_no_equivocation_fails_when_an_honest_key_signs_two_blocks() -> None:
    obs = healthy()
    obs.nodes[2].blocks[2] = block(2, tag=9)
    result = check_no_equivocation(obs)
    assert result.passed is False and "signed two blocks at height 2" in result.reason
    # The same conflict by a byzantine key is not an honest validator's fault.
    obs.honest_keys = (KEY_B,)
    obs.nodes[2].blocks[2] = BlockRecord(2, b"\x09" * 32, b"", signers=(KEY_A,))
    assert check_no_equivocation(obs).passed is True


def test_chaos_no_equivocation_fails_on_evidence_against_an_honest_key() -> None:
    obs = healthy()
    obs.nodes[0].evidence_against = (KEY_C,)
    result = check_no_equivocation(obs)
    assert result.passed is False and "evidence against honest" in result.reason


def test_chaos_evidence_fails_when_a_double_signer_is_not_recorded() -> None:
    obs = healthy()
    obs.double_signers = (KEY_C,)
    obs.honest_keys = (KEY_A, KEY_B)
    result = check_evidence(obs)
    assert result.passed is False and "no evidence" in result.reason
    for node in obs.nodes:
        node.evidence_against = (KEY_C,)
    assert check_evidence(obs).passed is True
