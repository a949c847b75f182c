"""The Tendermint engine under a simulated network (``tests.consensus_harness``), and its
lock rules fed by hand.

Every simulation checks, as it runs, that honest nodes agree, that every commit validates,
that every decided block was proposed by a round's proposer and extends the chain, and
that no honest validator signs twice at one (height, round, step) or at or below its last
record (``Simulation.check_safety``).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.consensus_harness import (
    CHAIN_ID,
    DOUBLE_PROPOSE,
    DOUBLE_SIGN,
    GENESIS_HASH,
    FakeApp,
    Message,
    Simulation,
    fast_timeouts,
    make_block,
    make_keys,
    make_validator_set,
    restarted_engine,
    step_of,
)

from civicledger.chain.block import Block, ValidatorSet
from civicledger.consensus.bft.engine import (
    MAX_VOTES_PER_VALIDATOR,
    STEP_PRECOMMIT,
    STEP_PREVOTE,
    STEP_PROPOSE,
    Broadcast,
    Decide,
    Effect,
    RecordSigned,
    ScheduleTimeout,
    Tendermint,
)
from civicledger.consensus.bft.messages import NIL, PRECOMMIT, PREVOTE, Proposal, Vote
from civicledger.crypto.keys import KeyPair

# -- helpers -----------------------------------------------------------------------


def assert_agreement_and_commits(sim: Simulation, up_to: int) -> None:
    """Safety checks, and every honest node that has a height has the same block there."""
    sim.check_safety()
    for height in range(1, up_to + 1):
        hashes = sim.decided_hashes(height)
        synced = {n.synced[height].hash for n in sim.honest_nodes() if height in n.synced}
        assert len(hashes | synced) <= 1, f"height {height}: {hashes | synced}\n{sim.describe()}"


def run_to(sim: Simulation, height: int, max_time_ms: int, nodes: list[int] | None = None) -> None:
    ok = sim.run_until_height(height, max_time_ms, nodes)
    assert ok, f"no liveness: height {height} not reached by {max_time_ms}ms\n{sim.describe()}"


class Hand:
    """One engine (validator ``me`` of ``n`` equal ones) fed signed messages by hand."""

    def __init__(self, me: int = 0, n: int = 4, last_signed: tuple[int, int, int] = (0, -1, 0)):
        self.keys: list[KeyPair] = make_keys(n)
        self.validators: ValidatorSet = make_validator_set(self.keys)
        self.me = me
        self.app = FakeApp(CHAIN_ID, self.keys[me].address, self.validators)
        self.engine = Tendermint(
            CHAIN_ID, self.app, self.keys[me], fast_timeouts(), last_signed=last_signed
        )
        self.effects: list[Effect] = []

    def restarted(self) -> Hand:
        """The same validator after a crash: a new engine given its last record."""
        other = Hand(self.me, len(self.keys))
        records = [e for e in self.effects if isinstance(e, RecordSigned)]
        last = records[-1]
        assert (last.height, last.round, last.step) == self.engine.last_signed
        other.engine = restarted_engine(
            CHAIN_ID, other.app, other.keys[self.me], fast_timeouts(), signed_triple(last), last
        )
        return other

    def block(self, proposer: int, height: int, round_: int) -> Block:
        return make_block(
            CHAIN_ID, height, round_, GENESIS_HASH, self.keys[proposer].address, self.validators
        )

    def feed(self, effects: list[Effect]) -> list[Effect]:
        self.effects += effects
        return effects

    def start(self, height: int = 1) -> list[Effect]:
        return self.feed(self.engine.start_height(height, self.validators))

    def proposal(self, sender: int, round_: int, block: Block, pol_round: int = -1) -> list[Effect]:
        p = Proposal.sign(self.keys[sender], CHAIN_ID, 1, round_, block, pol_round)
        return self.feed(self.engine.on_proposal(p))

    def votes(
        self, vote_type: str, round_: int, block_hash: bytes, senders: list[int]
    ) -> list[Effect]:
        out: list[Effect] = []
        for sender in senders:
            v = Vote.sign(self.keys[sender], CHAIN_ID, vote_type, 1, round_, block_hash)
            out += self.engine.on_vote(v)
        return self.feed(out)

    def timeout(self, kind: int, round_: int) -> list[Effect]:
        return self.feed(self.engine.on_timeout(kind, 1, round_))

    def next_round_via_nil_precommits(self, round_: int, senders: list[int]) -> None:
        """Others precommit nil in ``round_``; the precommit timeout moves us on."""
        effects = self.votes(PRECOMMIT, round_, NIL, senders)
        assert any(
            isinstance(e, ScheduleTimeout) and e.kind == STEP_PRECOMMIT and e.round == round_
            for e in effects
        ), effects
        self.timeout(STEP_PRECOMMIT, round_)
        assert self.engine.round == round_ + 1


def signed_triple(record: RecordSigned) -> tuple[int, int, int]:
    return (record.height, record.round, record.step)


def sent_votes(effects: list[Effect], vote_type: str | None = None) -> list[Vote]:
    return [
        e.message
        for e in effects
        if isinstance(e, Broadcast)
        and isinstance(e.message, Vote)
        and (vote_type is None or e.message.type == vote_type)
    ]


def the_vote(effects: list[Effect], vote_type: str) -> Vote:
    votes = sent_votes(effects, vote_type)
    assert len(votes) == 1, effects
    return votes[0]


# -- no faults ---------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 4, 7])
def test_no_faults_every_node_decides_the_same_blocks(n: int) -> None:
    sim = Simulation(n, seed=n, max_height=10)
    run_to(sim, 10, 60_000)
    assert_agreement_and_commits(sim, 10)
    for node in sim.nodes:
        assert sorted(node.decisions) == list(range(1, 11))  # decided, not synced
    for height in range(1, 11):
        assert len(sim.decided_hashes(height)) == 1
        decision = sim.nodes[0].decisions[height]
        # Delays are far below the timeouts: every height is decided in round 0, by the
        # block of round 0's proposer, built on the previous block.
        assert decision.commit.round == 0
        proposer = sim.nodes[sim.proposer_index(height, 0)]
        assert decision.block.header.proposer == proposer.key.address
        previous = sim.chain[height - 1].hash if height > 1 else GENESIS_HASH
        assert decision.block.header.prev_hash == previous
        signers = {s.public_key for s in decision.commit.signatures}
        assert 3 * sum(sim.validators.get_power(k) for k in signers) > 2 * n


# -- crashes -------------------------------------------------------------------------


@pytest.mark.parametrize("crashed", [1, 3], ids=["proposer-of-round-0", "other"])
def test_one_crashed_of_four_keeps_deciding_via_round_changes(crashed: int) -> None:
    sim = Simulation(4, seed=11, crashed=[crashed], max_height=10)
    assert sim.proposer_index(1, 0) == 1
    run_to(sim, 10, 120_000)
    assert_agreement_and_commits(sim, 10)
    assert not sim.nodes[crashed].decisions
    live = sim.nodes[0]
    for height in range(1, 11):
        decision = live.decisions[height]
        if sim.proposer_index(height, 0) == crashed:
            # Its rounds time out; a later round's proposer gets the block in.
            assert decision.commit.round >= 1
            assert decision.block.header.proposer != sim.nodes[crashed].key.address


def test_two_crashed_of_four_block_progress_until_they_restart() -> None:
    sim = Simulation(4, seed=12, max_height=9)
    # Crash 2 and 3 the moment each has decided height 3 (before it signs at height 4).
    for index in (2, 3):
        node = sim.nodes[index]
        assert sim.run_until(lambda node=node: 3 in node.decisions, 30_000)
        sim.crash(index)
    down_at = sim.now
    sim.run_for(10_000)
    assert sim.max_decided_height() == 3, sim.describe()  # no height needing them is decided
    sim.check_safety()
    # The two live ones wait at height 4 (without 2f+1 votes of any kind nothing moves).
    assert {n.engine.height for n in sim.live_honest()} == {4}
    sim.restart(2)
    sim.restart(3)
    assert sim.nodes[2].synced == {} or max(sim.nodes[2].synced) <= 3
    run_to(sim, 9, down_at + 120_000)
    assert_agreement_and_commits(sim, 9)
    # The restarted nodes take part again: they decide the new heights themselves.
    for index in (2, 3):
        assert all(h in sim.nodes[index].decisions for h in range(5, 10))


@pytest.mark.parametrize("start_ms", [0, 400])
def test_partition_two_two_decides_nothing_until_healed(start_ms: int) -> None:
    heal_ms = start_ms + 6_000
    sim = Simulation(4, seed=13, max_height=8)
    sim.partition([{0, 1}, {2, 3}], start_ms, heal_ms)
    sim.run_until(lambda: False, start_ms)
    reached = max(node.engine.height for node in sim.nodes)
    decided_before = sim.max_decided_height()
    sim.run_until(lambda: False, heal_ms - 1)
    # Nothing beyond the heights already under way when it started (their votes may have
    # been on the wire); from the start of time: nothing at all.
    assert sim.max_decided_height() <= reached
    if start_ms == 0:
        assert sim.decision_count() == 0
    frozen = sim.max_decided_height()
    sim.run_for(3_000)
    assert sim.max_decided_height() > max(frozen, decided_before)
    run_to(sim, 8, heal_ms + 60_000)
    assert_agreement_and_commits(sim, 8)


# -- voting power --------------------------------------------------------------------


def test_unequal_powers_decide_and_commits_carry_more_than_two_thirds_of_power() -> None:
    sim = Simulation(4, seed=14, powers=[3, 1, 1, 1], max_height=6)
    run_to(sim, 6, 60_000)
    assert_agreement_and_commits(sim, 6)
    # The proposer rotation is weighted: validator 0 proposes half of the slots.
    proposers = [sim.proposer_index(h, 0) for h in range(1, 7)]
    assert proposers.count(0) == 3


def test_three_of_four_validators_without_two_thirds_of_power_decide_nothing() -> None:
    # 3 of 4 validators is a quorum by count, but 3 of 6 power is not.
    sim = Simulation(4, seed=15, powers=[3, 1, 1, 1], crashed=[0], max_height=3)
    sim.run_for(20_000)
    sim.check_safety()
    assert sim.decision_count() == 0
    # Short of 2f+1 power of any votes, they cannot even time out of round 0.
    assert {(n.engine.height, n.engine.round) for n in sim.live_honest()} == {(1, 0)}


def test_two_of_four_validators_with_two_thirds_of_power_decide() -> None:
    # 2 of 4 validators is no quorum by count, but 5 of 7 power is.
    sim = Simulation(4, seed=16, powers=[4, 1, 1, 1], crashed=[2, 3], max_height=5)
    run_to(sim, 5, 120_000)
    assert_agreement_and_commits(sim, 5)
    for height in range(1, 6):
        commit = sim.nodes[0].decisions[height].commit
        assert {s.public_key for s in commit.signatures} == {
            sim.nodes[0].public_key,
            sim.nodes[1].public_key,
        }


# -- Byzantine validators ------------------------------------------------------------


def test_double_signer_cannot_break_agreement_and_is_caught() -> None:
    byzantine = 3
    sim = Simulation(
        4,
        seed=17,
        byzantine={byzantine: DOUBLE_SIGN},
        max_height=6,
        gossip_interval_ms=25,
        next_height_delay_ms=100,
    )
    run_to(sim, 6, 120_000)
    assert_agreement_and_commits(sim, 6)
    assert sim.byzantine_messages
    evidence = sim.equivocations_of(byzantine)
    assert evidence, "no honest node reported the double signer"
    key = sim.nodes[byzantine].public_key
    for observer, ev in evidence:
        assert sim.nodes[observer].honest
        first, second = ev.first, ev.second
        assert first.validator == second.validator == key
        assert (first.type, first.height, first.round) == (second.type, second.height, second.round)
        assert first.block_hash != second.block_hash
        assert first.is_signature_valid(CHAIN_ID) and second.is_signature_valid(CHAIN_ID)


def test_double_proposer_cannot_break_agreement() -> None:
    byzantine = 1  # the proposer of height 1, round 0 (and of height 5)
    sim = Simulation(4, seed=18, byzantine={byzantine: DOUBLE_PROPOSE}, max_height=8)
    assert sim.proposer_index(1, 0) == byzantine
    # Validators 0 and 2 get one block, 3 the other; the network keeps going with 0, 2
    # and the Byzantine validator (which votes like an honest one).
    run_to(sim, 8, 120_000, nodes=[0, 2])
    assert_agreement_and_commits(sim, 8)
    proposed_at_1 = {h for h, slots in sim.proposed.items() if (1, 0) in slots}
    assert len(proposed_at_1) == 2


def test_double_proposer_every_honest_node_decides_when_gossip_delivers_all() -> None:
    """Regression: an honest node kept only the first of an equivocating proposer's
    proposals and could not decide the other one, which a quorum precommitted."""
    # Without block sync: the engine must finish each height from the messages alone.
    sim = Simulation(4, seed=18, byzantine={1: DOUBLE_PROPOSE}, max_height=4, sync_after_ms=None)
    run_to(sim, 4, 60_000, nodes=[0, 2, 3])
    assert_agreement_and_commits(sim, 4)
    # Whoever got both proposals reported the proposer, once per round, with proof.
    key = sim.nodes[1].public_key
    reports = [(n.index, e) for n in sim.nodes if n.honest for e in n.double_proposals]
    assert reports, "no honest node reported the double proposer"
    for _, report in reports:
        first, second = report.first.signed(), report.second.signed()
        assert first.proposer == key and first.conflicts_with(second)
        assert first.is_signature_valid(CHAIN_ID) and second.is_signature_valid(CHAIN_ID)
    for node in sim.nodes:
        slots = [(e.first.height, e.first.round) for e in node.double_proposals]
        assert len(slots) == len(set(slots))


def test_double_signer_every_honest_node_decides_when_gossip_delivers_all() -> None:
    """Regression: an honest node counted only the first of a double signer's
    precommits and could not decide what a quorum (with its other precommit) signed."""
    byzantine, straggler = 0, 3

    def link(src: int, dst: int, message: Message) -> bool:
        # The straggler misses round 0's proposal until it has precommitted (nil).
        return not (
            isinstance(message, Proposal)
            and dst == straggler
            and sim.nodes[straggler].last_signed < (1, 0, STEP_PRECOMMIT)
        )

    sim = Simulation(
        4,
        seed=23,
        byzantine={byzantine: DOUBLE_SIGN},
        split=([1, 2], [straggler]),
        link_filter=link,
        max_height=3,
        sync_after_ms=None,
    )
    assert sim.run_until_height(1, 5_000, nodes=[1, 2])
    assert sim.nodes[1].decisions[1].commit.round == 0
    run_to(sim, 3, 60_000, nodes=[1, 2, 3])


@pytest.mark.parametrize(
    "junk_votes",
    [
        pytest.param(0, id="two-votes"),
        pytest.param(1, id="three-votes"),
    ],
)
def test_double_signer_cannot_stall_the_network(junk_votes: int) -> None:
    """A double signer must not be able to split the honest validators' locks forever."""
    byzantine = 0

    def link(src: int, dst: int, message: Message) -> bool:
        # Round 0's proposal reaches neither the double signer nor validator 2 (they
        # prevote nil at the propose timeout); everything else arrives.
        return not (
            isinstance(message, Proposal)
            and (message.height, message.round) == (1, 0)
            and dst in (byzantine, 2)
        )

    sim = Simulation(
        5,
        seed=24,
        byzantine={byzantine: DOUBLE_SIGN},
        split=([1, 2], [3, 4]),  # its real vote to 1 and 2, the conflicting one to 3 and 4
        link_filter=link,
        max_height=3,
        junk_votes=junk_votes,
    )
    assert sim.proposer_index(1, 0) == 1
    # 3 and 4 see 1, 3, 4 and the double signer prevote A: they lock on A in round 0.
    # 1 and 2 get the double signer's nil first (after junk votes, if any); unless they
    # also count its prevote for A when gossip brings it, they never accept A's proof of
    # lock (L28) while 3 and 4 prevote nil for anything else: no decision ever again.
    run_to(sim, 3, 60_000)
    assert_agreement_and_commits(sim, 3)


def test_invalid_proposals_are_not_decided_the_round_changes() -> None:
    sim = Simulation(4, seed=19, max_height=5)
    # Every honest app rejects every round-0 block (time_ms = height * 1000 + round).
    for node in sim.nodes:
        node.app.reject_if = lambda block: block.header.time_ms % 1000 == 0
    run_to(sim, 5, 120_000)
    assert_agreement_and_commits(sim, 5)
    for height in range(1, 6):
        decision = sim.nodes[0].decisions[height]
        assert decision.commit.round >= 1
        assert decision.block.header.time_ms % 1000 >= 1


def test_invalid_proposal_of_one_block_then_a_later_proposal_is_decided() -> None:
    sim = Simulation(4, seed=20, max_height=2)
    proposer = sim.nodes[sim.proposer_index(1, 0)]
    bad = proposer.app.build_proposal(1, 0)
    for node in sim.nodes:
        node.app.rejected.add(bad.hash)
    run_to(sim, 2, 60_000)
    assert_agreement_and_commits(sim, 2)
    decided = sim.chain[1]
    assert decided.hash != bad.hash
    assert sim.nodes[0].decisions[1].commit.round >= 1
    # The proposer prevoted its own block; the others prevoted nil.
    prevotes_r0 = [
        m
        for node in sim.nodes
        for _, _, m in node.sent
        if isinstance(m, Vote) and m.type == PREVOTE and (m.height, m.round) == (1, 0)
    ]
    assert sorted(v.block_hash == bad.hash for v in prevotes_r0) == [False, False, False, True]


# -- locking (L22, L28, L36) on one engine fed by hand ---------------------------------
# Four equal validators; we are validator 0. At height 1 the proposer of round r is
# validator (1 + r) % 4, so rounds 0, 1, 2 are proposed by 1, 2, 3.


def lock_on_a_in_round_0(hand: Hand) -> Block:
    hand.start()
    a = hand.block(1, 1, 0)
    assert the_vote(hand.proposal(1, 0, a), PREVOTE).block_hash == a.hash
    precommit = the_vote(hand.votes(PREVOTE, 0, a.hash, [1, 2]), PRECOMMIT)
    assert precommit.block_hash == a.hash  # L36: 2f+1 prevotes for A -> lock and precommit
    assert hand.engine.locked_round == 0 and hand.engine.locked_value == a
    hand.next_round_via_nil_precommits(0, [1, 2])
    return a


def test_locked_node_prevotes_nil_for_a_new_block_l22() -> None:
    hand = Hand()
    lock_on_a_in_round_0(hand)
    b = hand.block(2, 1, 1)
    vote = the_vote(hand.proposal(2, 1, b), PREVOTE)
    assert vote.block_hash == NIL
    assert hand.engine.locked_round == 0


def test_locked_node_prevotes_its_locked_block_when_proposed_again_l22() -> None:
    hand = Hand()
    a = lock_on_a_in_round_0(hand)
    vote = the_vote(hand.proposal(2, 1, a), PREVOTE)
    assert vote.block_hash == a.hash


def test_locked_node_follows_a_proof_of_lock_from_a_later_round_l28() -> None:
    hand = Hand()
    a = lock_on_a_in_round_0(hand)
    b = hand.block(2, 1, 1)
    assert the_vote(hand.proposal(2, 1, b), PREVOTE).block_hash == NIL
    hand.next_round_via_nil_precommits(1, [1, 2, 3])
    # Round 2: B again, claiming a proof of lock from round 1. Without it: no prevote yet,
    # then nil at the propose timeout.
    assert sent_votes(hand.proposal(3, 2, b, pol_round=1)) == []
    assert hand.engine.locked_value == a
    # Once 2f+1 round-1 prevotes for B arrive (round 1 >= our locked round 0): prevote B.
    vote = the_vote(hand.votes(PREVOTE, 1, b.hash, [1, 2, 3]), PREVOTE)
    assert vote.round == 2 and vote.block_hash == b.hash


def test_locked_node_prevotes_nil_with_only_f_plus_one_prevotes_for_the_other_block() -> None:
    hand = Hand()
    lock_on_a_in_round_0(hand)
    b = hand.block(2, 1, 1)
    hand.proposal(2, 1, b)
    hand.next_round_via_nil_precommits(1, [1, 2, 3])
    hand.proposal(3, 2, b, pol_round=1)
    # Two prevotes for B in round 1 (ours was nil): no proof of lock.
    assert sent_votes(hand.votes(PREVOTE, 1, b.hash, [2, 3])) == []
    vote = the_vote(hand.timeout(STEP_PROPOSE, 2), PREVOTE)
    assert vote.block_hash == NIL


def test_locked_node_ignores_a_proof_of_lock_older_than_its_lock_l28() -> None:
    hand = Hand()
    hand.start()
    b = hand.block(1, 1, 0)
    # Round 0: no proposal reaches us; we prevote nil. Validators 1-3 prevote B: a proof
    # of lock for B in round 0 that we see (but, without the proposal, cannot lock on).
    assert the_vote(hand.timeout(STEP_PROPOSE, 0), PREVOTE).block_hash == NIL
    hand.votes(PREVOTE, 0, b.hash, [1, 2, 3])
    assert the_vote(hand.timeout(STEP_PREVOTE, 0), PRECOMMIT).block_hash == NIL
    hand.next_round_via_nil_precommits(0, [1, 2])
    # Round 1: lock on A.
    a = hand.block(2, 1, 1)
    assert the_vote(hand.proposal(2, 1, a), PREVOTE).block_hash == a.hash
    assert the_vote(hand.votes(PREVOTE, 1, a.hash, [2, 3]), PRECOMMIT).block_hash == a.hash
    assert hand.engine.locked_round == 1
    hand.next_round_via_nil_precommits(1, [2, 3])
    # Round 2: B with its round-0 proof of lock; 0 < locked round 1, so nil.
    vote = the_vote(hand.proposal(3, 2, b, pol_round=0), PREVOTE)
    assert vote.block_hash == NIL
    assert hand.engine.locked_value == a


def test_unlocked_node_follows_an_old_proof_of_lock() -> None:
    hand = Hand()
    hand.start()
    b = hand.block(1, 1, 0)
    hand.timeout(STEP_PROPOSE, 0)
    hand.votes(PREVOTE, 0, b.hash, [1, 2, 3])
    hand.timeout(STEP_PREVOTE, 0)
    hand.next_round_via_nil_precommits(0, [1, 2])
    hand.timeout(STEP_PROPOSE, 1)
    hand.votes(PREVOTE, 1, NIL, [1, 2])
    hand.next_round_via_nil_precommits(1, [1, 2])
    vote = the_vote(hand.proposal(3, 2, b, pol_round=0), PREVOTE)
    assert vote.block_hash == b.hash


def test_relock_on_a_newer_polka_l36() -> None:
    hand = Hand()
    lock_on_a_in_round_0(hand)
    b = hand.block(2, 1, 1)
    assert the_vote(hand.proposal(2, 1, b), PREVOTE).block_hash == NIL
    # 2f+1 prevotes for B in our current round: lock on B and precommit it (L36).
    vote = the_vote(hand.votes(PREVOTE, 1, b.hash, [1, 2, 3]), PRECOMMIT)
    assert vote.block_hash == b.hash
    assert hand.engine.locked_round == 1 and hand.engine.locked_value == b
    assert hand.engine.valid_round == 1


def test_skips_to_a_round_with_f_plus_1_votes_l55_and_decides_an_earlier_round_l49() -> None:
    hand = Hand()
    hand.start()
    a = hand.block(1, 1, 0)
    hand.proposal(1, 0, a)
    assert the_vote(hand.votes(PREVOTE, 0, a.hash, [1, 2]), PRECOMMIT).block_hash == a.hash
    # f+1 validators are in round 1 already: we follow them (L55).
    assert hand.votes(PREVOTE, 1, NIL, [2]) == []
    effects = hand.votes(PREVOTE, 1, NIL, [3])
    assert hand.engine.round == 1
    assert any(isinstance(e, ScheduleTimeout) and e.kind == STEP_PROPOSE for e in effects)
    # 2f+1 precommits for A in round 0 (ours and two late ones) decide A (L49).
    effects = hand.votes(PRECOMMIT, 0, a.hash, [1, 2])
    decides = [e for e in effects if type(e).__name__ == "Decide"]
    assert len(decides) == 1
    decide = decides[0]
    assert decide.block == a  # type: ignore[attr-defined]
    decide.commit.validate(CHAIN_ID, a.header, hand.validators)  # type: ignore[attr-defined]
    assert decide.commit.round == 0  # type: ignore[attr-defined]


def test_a_double_signers_second_prevote_completes_a_polka() -> None:
    hand = Hand()
    hand.start()
    a = hand.block(1, 1, 0)
    hand.proposal(1, 0, a)  # we prevote A
    hand.votes(PREVOTE, 0, a.hash, [1])
    assert hand.votes(PREVOTE, 0, NIL, [3]) != []  # 2f+1 of any kind: prevote timeout
    # Validator 3 also prevotes A: both its votes count, each for its own block, so A
    # has 2f+1 and we lock and precommit at once (L36), reporting the equivocation too.
    effects = hand.votes(PREVOTE, 0, a.hash, [3])
    assert [type(e).__name__ for e in effects if type(e).__name__ == "Equivocation"]
    assert the_vote(effects, PRECOMMIT).block_hash == a.hash
    assert hand.engine.locked_round == 0


def test_a_double_signers_second_precommit_completes_a_commit() -> None:
    hand = Hand()
    hand.start()
    a = hand.block(1, 1, 0)
    hand.proposal(1, 0, a)
    hand.votes(PREVOTE, 0, a.hash, [1, 2])  # we precommit A
    hand.votes(PRECOMMIT, 0, a.hash, [1])
    hand.votes(PRECOMMIT, 0, NIL, [3])
    effects = hand.votes(PRECOMMIT, 0, a.hash, [3])
    decides = [e for e in effects if isinstance(e, Decide)]
    assert len(decides) == 1, effects
    commit = decides[0].commit
    commit.validate(CHAIN_ID, a.header, hand.validators)
    assert len(commit.signatures) == 3


def test_a_validator_counts_for_a_bounded_number_of_blocks() -> None:
    hand = Hand()
    hand.start()
    a = hand.block(1, 1, 0)
    hand.proposal(1, 0, a)
    for i in range(MAX_VOTES_PER_VALIDATOR + 3):
        hand.votes(
            PREVOTE,
            0,
            make_block(CHAIN_ID, 1, 0, GENESIS_HASH, bytes(20), hand.validators, bytes([i])).hash,
            [3],
        )
    state = hand.engine.rounds[0].prevotes
    counted = [h for h, voters in state.by_block.items() if hand.keys[3].public_key in voters]
    assert len(counted) == MAX_VOTES_PER_VALIDATOR
    assert len(state.by_block) <= MAX_VOTES_PER_VALIDATOR + 1  # no room taken by refused votes


def test_proposal_from_another_than_the_rounds_proposer_is_ignored() -> None:
    hand = Hand()
    hand.start()
    forged = hand.block(2, 1, 0)
    assert hand.proposal(2, 0, forged) == []  # round 0 is validator 1's
    assert hand.proposal(3, 0, hand.block(3, 1, 0)) == []
    assert the_vote(hand.timeout(STEP_PROPOSE, 0), PREVOTE).block_hash == NIL


def test_invalid_block_is_neither_prevoted_nor_locked_even_with_a_polka() -> None:
    hand = Hand()
    hand.start()
    a = hand.block(1, 1, 0)
    hand.app.rejected.add(a.hash)
    assert the_vote(hand.proposal(1, 0, a), PREVOTE).block_hash == NIL
    # 2f+1 others prevote it anyway: L36 still needs valid(v).
    effects = hand.votes(PREVOTE, 0, a.hash, [1, 2, 3])
    assert sent_votes(effects) == []
    assert hand.engine.locked_round == -1 and hand.engine.valid_round == -1
    assert the_vote(hand.timeout(STEP_PREVOTE, 0), PRECOMMIT).block_hash == NIL
    # Nor is it decided by 2f+1 precommits.
    effects = hand.votes(PRECOMMIT, 0, a.hash, [1, 2, 3])
    assert not [e for e in effects if type(e).__name__ == "Decide"]


def test_timeouts_of_an_earlier_round_or_step_are_ignored() -> None:
    hand = Hand()
    hand.start()
    hand.votes(PREVOTE, 1, NIL, [2, 3])  # f+1 in round 1: skip to it
    assert hand.engine.round == 1
    assert hand.timeout(STEP_PROPOSE, 0) == []
    assert hand.timeout(STEP_PREVOTE, 0) == []
    assert hand.timeout(STEP_PRECOMMIT, 0) == []
    assert hand.timeout(STEP_PREVOTE, 1) == []  # still in the propose step
    assert hand.engine.round == 1
    b = hand.block(2, 1, 1)
    assert the_vote(hand.proposal(2, 1, b), PREVOTE).block_hash == b.hash


def test_restarted_node_keeps_its_lock() -> None:
    """Regression: a validator restarted with only last_signed forgot that it had
    precommitted A and prevoted a new block B in a later round (amnesia)."""
    hand = Hand()
    lock_on_a_in_round_0(hand)
    restarted = hand.restarted()
    assert restarted.engine.last_signed == (1, 0, STEP_PRECOMMIT)
    restarted.start()
    restarted.next_round_via_nil_precommits(0, [1, 2, 3])
    b = restarted.block(2, 1, 1)
    vote = the_vote(restarted.proposal(2, 1, b), PREVOTE)
    assert vote.block_hash == NIL


# -- restarts ------------------------------------------------------------------------


def records_and_broadcasts(effects: list[Effect]) -> list[tuple[int, int, int]]:
    out = []
    for e in effects:
        if isinstance(e, RecordSigned):
            out.append((e.height, e.round, e.step))
        elif isinstance(e, Broadcast):
            out.append((e.message.height, e.message.round, step_of(e.message)))
    return out


def test_restarted_engine_never_signs_at_or_below_its_last_record() -> None:
    last = (1, 0, STEP_PREVOTE)
    hand = Hand(me=0, last_signed=last)
    hand.start()
    a = hand.block(1, 1, 0)
    hand.proposal(1, 0, a)  # would prevote A (L22): already signed a prevote in round 0
    hand.votes(PREVOTE, 0, a.hash, [1, 2, 3])  # L36: precommit is above the record
    signed = records_and_broadcasts(hand.effects)
    assert signed == [(1, 0, STEP_PRECOMMIT), (1, 0, STEP_PRECOMMIT)]
    assert all(s > last for s in signed)


def test_restarted_proposer_does_not_propose_again_in_its_signed_round() -> None:
    hand = Hand(me=1, last_signed=(1, 0, STEP_PROPOSE))
    effects = hand.start()
    assert records_and_broadcasts(effects) == []
    assert hand.app.build_calls == []


def test_restarted_proposer_still_schedules_its_propose_timeout() -> None:
    """Regression: a proposer that may not sign again scheduled no propose timeout."""
    hand = Hand(me=1, last_signed=(1, 0, STEP_PROPOSE))
    effects = hand.start()
    assert any(isinstance(e, ScheduleTimeout) and e.kind == STEP_PROPOSE for e in effects)


@pytest.mark.parametrize(
    ("node", "record_number"),
    [(1, 1), (1, 3), (2, 2), (0, 7), (3, 12)],
)
def test_no_double_signing_across_a_restart(node: int, record_number: int) -> None:
    """Crash ``node`` right after its ``record_number``-th record is durable (before the
    message leaves), restart it 200 ms later: it signs nothing at or below that record."""
    counts = {"n": 0}

    def crash_here(index: int, record: RecordSigned) -> bool:
        if index != node or sim.nodes[index].restarts:
            return False
        counts["n"] += 1
        return counts["n"] == record_number

    sim = Simulation(4, seed=21 + record_number, crash_on_record=crash_here, max_height=12)
    assert sim.run_until(lambda: not sim.nodes[node].alive, 30_000)
    last = sim.nodes[node].last_signed
    crashed_at = sim.now
    sim.restart(node, at_ms=crashed_at + 200)
    run_to(sim, 12, crashed_at + 60_000)
    assert_agreement_and_commits(sim, 12)
    after = [m for _, inc, m in sim.nodes[node].sent if inc == sim.nodes[node].incarnation]
    assert after, "the restarted node should take part again"
    for message in after:
        assert (message.height, message.round, step_of(message)) > last
    records = sim.nodes[node].records
    assert records[record_number:] and all(r > last for r in records[record_number:])


def test_liveness_after_proposer_restarts_between_record_and_broadcast() -> None:
    """Regression: the proposer records its proposal and crashes before sending it; once
    restarted it may not propose again, and (with one other validator down) it must time
    out of the propose step for anyone to reach 2f+1 prevotes."""
    proposer = 1

    def crash_before_proposal_leaves(index: int, record: RecordSigned) -> bool:
        return index == proposer and (record.height, record.round, record.step) == (1, 0, 1)

    sim = Simulation(4, seed=22, crashed=[3], crash_on_record=crash_before_proposal_leaves)
    sim.max_height = 3
    assert sim.proposer_index(1, 0) == proposer
    sim.restart(proposer, at_ms=50)
    run_to(sim, 3, 60_000)


def crash_recover_locked_validators() -> Simulation:
    """Validators 0, 1 and 2 lock on A in round 0; only 2 gets the precommits and decides
    A, and is cut off at once; 3 never sees A. Then 0 and 1 crash and restart from their
    own (empty) chain, since the one node that knows A is decided is unreachable."""

    def link(src: int, dst: int, message: Message) -> bool:
        if isinstance(message, Proposal) and (message.height, message.round) == (1, 0):
            return dst != 3  # validator 3 never sees round 0's block
        return not (
            isinstance(message, Vote)
            and message.type == PRECOMMIT
            and (message.height, message.round) == (1, 0)
            and dst in (0, 1)
            and sim.nodes[dst].incarnation == 0
        )  # 0 and 1 do not see round 0's precommits before they crash

    sim = Simulation(4, seed=5, link_filter=link, max_height=1)
    assert sim.run_until(lambda: 1 in sim.nodes[2].decisions, 10_000)
    sim.partition([{0, 1, 3}, {2}], sim.now, None)
    assert sim.nodes[0].engine.locked_round == 0 and sim.nodes[1].engine.locked_round == 0
    sim.crash(0)
    sim.crash(1)
    sim.restart(0, at_ms=sim.now + 50, catch_up=False)
    sim.restart(1, at_ms=sim.now + 60, catch_up=False)
    return sim


def test_agreement_survives_crash_recovery_of_locked_validators() -> None:
    """Regression: with only last_signed surviving a restart, 0 and 1 forgot their lock
    and decided B with 3, while 2 had decided A -- with no Byzantine node at all."""
    sim = crash_recover_locked_validators()
    sim.run_until(lambda: all(1 in sim.nodes[i].decisions for i in (0, 1, 3)), 30_000)
    sim.check_safety()


def test_crash_recovered_locked_validators_still_decide() -> None:
    sim = crash_recover_locked_validators()
    run_to(sim, 1, 60_000, nodes=[0, 1, 3])
    sim.check_safety()
    assert sim.nodes[3].decisions[1].block == sim.nodes[2].decisions[1].block


def test_restarted_locked_proposer_proposes_its_locked_block() -> None:
    hand = Hand()  # validator 0 proposes round 3 at height 1
    a = lock_on_a_in_round_0(hand)
    restarted = hand.restarted()
    restarted.start()
    for round_ in (0, 1, 2):
        restarted.next_round_via_nil_precommits(round_, [1, 2, 3])
    proposals = [
        e.message
        for e in restarted.effects
        if isinstance(e, Broadcast) and isinstance(e.message, Proposal)
    ]
    assert len(proposals) == 1 and proposals[0].round == 3
    assert proposals[0].block == a and proposals[0].pol_round == 0


def test_locked_proposer_proposes_its_locked_block() -> None:
    hand = Hand()
    a = lock_on_a_in_round_0(hand)
    for round_ in (1, 2):
        hand.next_round_via_nil_precommits(round_, [1, 2, 3])
    proposals = [
        e.message
        for e in hand.effects
        if isinstance(e, Broadcast) and isinstance(e.message, Proposal)
    ]
    assert len(proposals) == 1 and proposals[0].round == 3
    assert proposals[0].block == a and proposals[0].pol_round == 0


# -- random schedules ------------------------------------------------------------------

CRASH_AT_START = "crash-at-start"
CRASH_LATER = "crash-later"
CRASH_RESTART = "crash-restart"


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(st.data())
def test_random_schedules_keep_agreement_validity_and_liveness(data: st.DataObject) -> None:
    n = data.draw(st.sampled_from([4, 5, 7]), label="n")
    powers = data.draw(
        st.one_of(st.just([1] * n), st.lists(st.integers(1, 3), min_size=n, max_size=n)),
        label="powers",
    )
    f = (sum(powers) - 1) // 3  # most faulty power tolerated
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    max_delay = data.draw(st.integers(2, 400), label="max_delay_ms")
    drop_prob = data.draw(st.sampled_from([0.0, 0.05, 0.2, 0.5]), label="drop_prob")
    dup_prob = data.draw(st.sampled_from([0.0, 0.1, 0.3]), label="dup_prob")
    slow_prob = data.draw(st.sampled_from([0.0, 0.1, 0.3]), label="slow_prob")
    heal_ms = data.draw(st.integers(0, 4_000), label="heal_ms")
    drops_heal = data.draw(st.booleans(), label="network heals")
    gossip_ms = data.draw(st.sampled_from([100, 300, 1_000]), label="gossip_interval_ms")
    junk_votes = data.draw(st.sampled_from([0, 0, 1]), label="double signers' junk votes")
    candidates = data.draw(st.permutations(range(n)), label="fault order")
    wanted = data.draw(st.integers(0, n), label="faults wanted")
    faulty: list[int] = []
    for i in candidates[:wanted]:
        if sum(powers[j] for j in faulty) + powers[i] <= f:
            faulty.append(i)
    kinds = [
        data.draw(
            st.sampled_from(
                [CRASH_AT_START, CRASH_LATER, CRASH_RESTART, DOUBLE_SIGN, DOUBLE_PROPOSE]
            ),
            label=f"fault of {i}",
        )
        for i in faulty
    ]
    partition = data.draw(st.sampled_from(["none", "static", "flaky"]), label="partitions")

    faults = dict(zip(faulty, kinds, strict=True))
    target = 5
    sim = Simulation(
        n,
        seed=seed,
        powers=powers,
        byzantine={i: k for i, k in faults.items() if k in (DOUBLE_SIGN, DOUBLE_PROPOSE)},
        crashed=[i for i, k in faults.items() if k == CRASH_AT_START],
        max_delay_ms=max_delay,
        drop_prob=drop_prob,
        heal_ms=heal_ms if drops_heal else None,
        dup_prob=dup_prob,
        slow_prob=slow_prob,
        gossip_interval_ms=gossip_ms,
        random_split=True,
        junk_votes=junk_votes,
        max_height=target,
    )
    for i, kind in faults.items():
        if kind in (CRASH_LATER, CRASH_RESTART):
            down = data.draw(st.integers(0, heal_ms), label=f"crash time of {i}")
            sim.crash(i, at_ms=down)
            if kind == CRASH_RESTART:
                up = data.draw(st.integers(down + 1, heal_ms + 2_000), label=f"restart of {i}")
                catch_up = data.draw(st.booleans(), label=f"restart of {i} catches up")
                sim.restart(i, at_ms=up, catch_up=catch_up)
    if partition == "static" and heal_ms:
        cut = data.draw(st.integers(1, n - 1), label="partition size")
        sim.partition([set(candidates[:cut]), set(candidates[cut:])], 0, heal_ms)
    elif partition == "flaky":
        sim.flaky_network(heal_ms)  # a new random partition every 50-500 ms

    # Liveness is owed when the faulty power is at most f (always, here) and the network
    # heals: no drops, no slow tail, no partition after heal_ms. Stragglers left behind by
    # an equivocator catch up by block sync (see the xfail tests for the engine alone).
    # Not yet with double signers that sign more than two votes: see
    # test_double_signer_cannot_stall_the_network[three-votes].
    liveness_owed = drops_heal and not (junk_votes and DOUBLE_SIGN in kinds)
    restarted = [i for i, k in faults.items() if k == CRASH_RESTART]
    owed = [node.index for node in sim.honest_nodes() if node.index not in faults]

    def done() -> bool:
        return sim.all_decided(target, owed + [i for i in restarted if sim.nodes[i].alive])

    reached = sim.run_until(done, heal_ms + 60_000)
    sim.check_safety()
    assert_agreement_and_commits(sim, target)
    if liveness_owed:
        assert reached, sim.describe()
