"""The Tendermint consensus algorithm as a deterministic state machine.

This follows Algorithm 1 of Buchman, Kwon and Milosevic, "The latest gossip on BFT
consensus" (arXiv:1807.04938); the comments ``L22`` etc. name its lines. "2f+1" is read
as *more than two thirds of the voting power* and "f+1" as *more than one third*.

The engine does no I/O: the node feeds it events (``start_height``, ``on_proposal``,
``on_vote``, ``on_timeout``) that it has already checked for signature and origin, and
it returns effects (``Broadcast``, ``ScheduleTimeout``, ``Decide``, ``RecordSigned``,
``Equivocation``) that the node carries out in order. Whether a block is valid and what
the proposer proposes are asked of an ``Application`` (block execution lives there).

Safety against double signing across restarts: before any signature the engine emits
``RecordSigned(height, round, step)``, which the node must write durably before it
carries out the following ``Broadcast``; on restart the node passes the last record in,
and the engine never signs at or below it again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from civicledger.chain.block import Block, Commit, CommitSignature, ValidatorSet
from civicledger.consensus.bft.messages import NIL, PRECOMMIT, PREVOTE, Proposal, Vote
from civicledger.crypto.keys import KeyPair
from civicledger.types import Hash32, PublicKey

__all__ = [
    "STEP_PRECOMMIT",
    "STEP_PREVOTE",
    "STEP_PROPOSE",
    "Application",
    "Broadcast",
    "Decide",
    "Effect",
    "Equivocation",
    "ProposalEquivocation",
    "RecordSigned",
    "ScheduleTimeout",
    "Tendermint",
    "TimeoutConfig",
]

STEP_PROPOSE = 1
STEP_PREVOTE = 2
STEP_PRECOMMIT = 3
_STEP_OF_VOTE = {PREVOTE: STEP_PREVOTE, PRECOMMIT: STEP_PRECOMMIT}
#: Votes or proposals further ahead than this many rounds are ignored (bounded memory).
MAX_ROUNDS_AHEAD = 10
#: An equivocating validator's votes count for at most this many blocks per round and type.
MAX_VOTES_PER_VALIDATOR = 2
#: At most this many different proposals are kept per round (an equivocating proposer).
MAX_PROPOSALS_PER_ROUND = 2
#: Votes set aside per round and type, waiting for a proposal of their block.
MAX_SET_ASIDE = 64


class Application(Protocol):
    """What consensus needs from the ledger."""

    def build_proposal(self, height: int, round_: int) -> Block:
        """A new block for ``height`` (the proposer's ``getValue()``)."""
        ...

    def is_valid_block(self, block: Block) -> bool:
        """``valid(v)``: the block extends our chain and executes to its header's roots."""
        ...


@dataclass(frozen=True, slots=True)
class TimeoutConfig:
    """Round timeouts in milliseconds; each grows by its delta per round."""

    propose_ms: int = 3_000
    propose_delta_ms: int = 500
    prevote_ms: int = 1_000
    prevote_delta_ms: int = 500
    precommit_ms: int = 1_000
    precommit_delta_ms: int = 500

    def propose(self, round_: int) -> int:
        return self.propose_ms + round_ * self.propose_delta_ms

    def prevote(self, round_: int) -> int:
        return self.prevote_ms + round_ * self.prevote_delta_ms

    def precommit(self, round_: int) -> int:
        return self.precommit_ms + round_ * self.precommit_delta_ms


# -- effects -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordSigned:
    """Durably record that we are about to sign at (height, round, step), with our lock.

    A validator restarted mid-height must remember its lock as well as its last
    signature: forgetting that it precommitted a block could let it prevote another
    one in a later round, and with others doing the same, two blocks could be decided.
    """

    height: int
    round: int
    step: int
    locked_round: int = -1
    locked_block: Block | None = None
    valid_round: int = -1
    valid_block: Block | None = None


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send a message to every peer (and process it ourselves: the engine already has)."""

    message: Proposal | Vote


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    """Call ``on_timeout(kind, height, round)`` after ``delay_ms``."""

    kind: int
    height: int
    round: int
    delay_ms: int


@dataclass(frozen=True, slots=True)
class Decide:
    """``block`` is final at its height, certified by ``commit``."""

    block: Block
    commit: Commit


@dataclass(frozen=True, slots=True)
class Equivocation:
    """A validator signed two different votes for one (height, round, type)."""

    first: Vote
    second: Vote


@dataclass(frozen=True, slots=True)
class ProposalEquivocation:
    """The proposer signed two different blocks for one (height, round)."""

    first: Proposal
    second: Proposal


Effect = RecordSigned | Broadcast | ScheduleTimeout | Decide | Equivocation | ProposalEquivocation


# -- vote bookkeeping ----------------------------------------------------------------


@dataclass(slots=True)
class _VoteSet:
    """The votes of one type in one round.

    Each validator counts once toward ``total`` (any vote), but toward every block it
    voted for: an equivocating validator's two votes both count, each for its own block,
    as in the paper, where a message counts for the value it carries. This is safe (two
    quorums still share an honest validator) and keeps honest nodes able to decide
    whatever a quorum signed, whichever of the two votes reached them first. A validator
    counts for at most ``MAX_VOTES_PER_VALIDATOR`` different blocks (bounded memory).
    """

    #: Each validator's first vote.
    votes: dict[PublicKey, Vote] = field(default_factory=dict)
    by_block: dict[Hash32, dict[PublicKey, Vote]] = field(default_factory=dict)
    power_by_block: dict[Hash32, int] = field(default_factory=dict)
    total: int = 0
    #: Votes for unknown blocks beyond a validator's cap, kept for ``readmit``.
    set_aside: list[Vote] = field(default_factory=list)

    def add(self, vote: Vote, power: int, *, known: bool) -> Vote | None:
        """Add ``vote``; return the conflicting earlier vote if the validator equivocates.

        ``known`` says the vote is for nil or for a block proposed in this round: such a
        vote always counts. Votes for unknown blocks count for at most
        ``MAX_VOTES_PER_VALIDATOR`` blocks per validator; beyond that they are kept aside
        (bounded) and counted if a proposal for their block turns up (``readmit``).
        """
        voters = self.by_block.get(vote.block_hash)
        if voters is not None and vote.validator in voters:
            return None  # a duplicate
        previous = self.votes.get(vote.validator)
        if previous is None:
            self.votes[vote.validator] = vote
            self.total += power
        elif not known and (
            sum(vote.validator in v for v in self.by_block.values()) >= MAX_VOTES_PER_VALIDATOR
        ):
            if len(self.set_aside) < MAX_SET_ASIDE and vote not in self.set_aside:
                self.set_aside.append(vote)
            return previous
        if voters is None:
            voters = self.by_block[vote.block_hash] = {}
        voters[vote.validator] = vote
        self.power_by_block[vote.block_hash] = self.power_by_block.get(vote.block_hash, 0) + power
        return previous

    def readmit(self, block_hash: Hash32, power_of: Callable[[PublicKey], int]) -> None:
        """Count the set-aside votes for ``block_hash``, now that it was proposed."""
        for vote in [v for v in self.set_aside if v.block_hash == block_hash]:
            self.set_aside.remove(vote)
            self.add(vote, power_of(vote.validator), known=True)

    def power_for(self, block_hash: Hash32) -> int:
        return self.power_by_block.get(block_hash, 0)


@dataclass(slots=True)
class _RoundState:
    #: The first proposal received: the one we prevote on (L22, L28).
    proposal: Proposal | None = None
    #: Every proposal of the round by its block hash (L36 and L49 look a block up here).
    proposals: dict[Hash32, Proposal] = field(default_factory=dict)
    prevotes: _VoteSet = field(default_factory=_VoteSet)
    precommits: _VoteSet = field(default_factory=_VoteSet)
    # "for the first time" guards of L34, L36, L47.
    prevote_timeout_scheduled: bool = False
    precommit_timeout_scheduled: bool = False
    locked_on_36: bool = False


class Tendermint:
    """One validator's (or observer's) consensus state for the current height."""

    def __init__(
        self,
        chain_id: str,
        app: Application,
        key: KeyPair | None,
        timeouts: TimeoutConfig | None = None,
        *,
        last_signed: tuple[int, int, int] = (0, -1, 0),
        restored: RecordSigned | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.app = app
        self.key = key
        self.timeouts = timeouts or TimeoutConfig()
        #: (height, round, step) of the last thing we signed: we never sign at or below it.
        self.last_signed = last_signed
        self.height = 0
        self.round = 0
        self.step = STEP_PROPOSE
        self.validators: ValidatorSet | None = None
        self.locked_value: Block | None = None
        self.locked_round = -1
        self.valid_value: Block | None = None
        self.valid_round = -1
        self.decided = False
        self.started = False
        self.rounds: dict[int, _RoundState] = {}
        self._validity: dict[Hash32, bool] = {}
        #: The lock recorded before a restart, restored when its height starts again.
        self._restored = restored

    # -- helpers -----------------------------------------------------------------------

    @property
    def _total(self) -> int:
        assert self.validators is not None
        return self.validators.total_power

    def _quorum(self, power: int) -> bool:
        """More than two thirds of the voting power (the paper's 2f+1)."""
        return 3 * power > 2 * self._total

    def _one_third(self, power: int) -> bool:
        """More than one third of the voting power (the paper's f+1)."""
        return 3 * power > self._total

    def _round(self, r: int) -> _RoundState:
        state = self.rounds.get(r)
        if state is None:
            state = self.rounds[r] = _RoundState()
        return state

    def proposer(self, round_: int) -> PublicKey:
        assert self.validators is not None
        return self.validators.compute_proposer(self.height, round_).public_key

    def _valid(self, block: Block) -> bool:
        cached = self._validity.get(block.hash)
        if cached is None:
            cached = self._validity[block.hash] = self.app.is_valid_block(block)
        return cached

    def _can_sign(self, round_: int, step: int) -> bool:
        return self.key is not None and (self.height, round_, step) > self.last_signed

    def _sign_vote(self, vote_type: str, block_hash: Hash32) -> list[Effect]:
        step = _STEP_OF_VOTE[vote_type]
        if not self._can_sign(self.round, step):
            return []
        assert self.key is not None
        if self.validators is None or self.validators.get_power(self.key.public_key) == 0:
            return []
        self.last_signed = (self.height, self.round, step)
        vote = Vote.sign(self.key, self.chain_id, vote_type, self.height, self.round, block_hash)
        effects: list[Effect] = [self._record(self.round, step), Broadcast(vote)]
        # Count our own vote like anyone else's.
        effects += self._add_vote(vote)
        return effects

    def _record(self, round_: int, step: int) -> RecordSigned:
        return RecordSigned(
            self.height,
            round_,
            step,
            self.locked_round,
            self.locked_value,
            self.valid_round,
            self.valid_value,
        )

    # -- events ------------------------------------------------------------------------

    def start_height(self, height: int, validators: ValidatorSet) -> list[Effect]:
        """Begin consensus on ``height`` with ``validators`` (L10 and StartRound(0))."""
        self.height = height
        self.validators = validators
        self.round = 0
        self.step = STEP_PROPOSE
        self.locked_value = None
        self.locked_round = -1
        self.valid_value = None
        self.valid_round = -1
        self.decided = False
        self.rounds = {}
        self._validity = {}
        self.started = True
        restored = self._restored
        if restored is not None and restored.height == height:
            self.locked_round, self.locked_value = restored.locked_round, restored.locked_block
            self.valid_round, self.valid_value = restored.valid_round, restored.valid_block
        self._restored = None
        return self._start_round(0)

    def _start_round(self, round_: int) -> list[Effect]:
        # L11-21 StartRound.
        self.round = round_
        self.step = STEP_PROPOSE
        effects: list[Effect] = []
        if self.key is not None and self.proposer(round_) == self.key.public_key:
            if self._can_sign(round_, STEP_PROPOSE):
                block = self.valid_value or self.app.build_proposal(self.height, round_)
                self._validity[block.hash] = True
                self.last_signed = (self.height, round_, STEP_PROPOSE)
                proposal = Proposal.sign(
                    self.key, self.chain_id, self.height, round_, block, self.valid_round
                )
                effects += [self._record(round_, STEP_PROPOSE), Broadcast(proposal)]
                effects += self._add_proposal(proposal)
            else:
                # We proposed in this round before a restart and may not sign again:
                # wait for the proposal (peers re-send it) like everyone else.
                effects.append(
                    ScheduleTimeout(
                        STEP_PROPOSE, self.height, round_, self.timeouts.propose(round_)
                    )
                )
        else:
            effects.append(
                ScheduleTimeout(STEP_PROPOSE, self.height, round_, self.timeouts.propose(round_))
            )
        # Messages of this round may have arrived before we entered it.
        effects += self._evaluate()
        return effects

    def on_proposal(self, proposal: Proposal) -> list[Effect]:
        """A proposal whose signature the node has checked."""
        if not self.started or proposal.height != self.height or self.decided:
            return []
        if proposal.round > self.round + MAX_ROUNDS_AHEAD:
            return []
        if proposal.proposer != self.proposer(proposal.round):
            return []
        return self._add_proposal(proposal)

    def _add_proposal(self, proposal: Proposal) -> list[Effect]:
        state = self._round(proposal.round)
        if proposal.block_hash in state.proposals:
            return []
        if len(state.proposals) >= MAX_PROPOSALS_PER_ROUND:
            return []
        # We prevote on the first; a second one (the proposer equivocated) is kept in
        # case a quorum forms around it, and reported once.
        first = state.proposal
        state.proposals[proposal.block_hash] = proposal
        if state.proposal is None:
            state.proposal = proposal
        assert self.validators is not None
        for votes in (state.prevotes, state.precommits):
            votes.readmit(proposal.block_hash, self.validators.get_power)
        if first is not None and len(state.proposals) == 2:
            return [ProposalEquivocation(first, proposal), *self._evaluate()]
        return self._evaluate()

    def on_vote(self, vote: Vote) -> list[Effect]:
        """A vote whose signature the node has checked."""
        if not self.started or vote.height != self.height or self.validators is None:
            return []
        if vote.round > self.round + MAX_ROUNDS_AHEAD:
            return []
        if self.validators.get_power(vote.validator) == 0:
            return []
        return self._add_vote(vote)

    def _add_vote(self, vote: Vote) -> list[Effect]:
        assert self.validators is not None
        state = self._round(vote.round)
        votes = state.prevotes if vote.type == PREVOTE else state.precommits
        known = vote.is_nil or vote.block_hash in state.proposals
        conflicting = votes.add(vote, self.validators.get_power(vote.validator), known=known)
        if conflicting is not None and conflicting.block_hash != vote.block_hash:
            # The second vote may complete a quorum: evaluate as for any vote.
            return [Equivocation(conflicting, vote), *self._evaluate()]
        return self._evaluate()

    def on_timeout(self, kind: int, height: int, round_: int) -> list[Effect]:
        if height != self.height or round_ != self.round or self.decided:
            return []
        if kind == STEP_PROPOSE and self.step == STEP_PROPOSE:
            # L57-60 OnTimeoutPropose: prevote nil.
            self.step = STEP_PREVOTE
            return self._sign_vote(PREVOTE, NIL) + self._evaluate()
        if kind == STEP_PREVOTE and self.step == STEP_PREVOTE:
            # L61-64 OnTimeoutPrevote: precommit nil.
            self.step = STEP_PRECOMMIT
            return self._sign_vote(PRECOMMIT, NIL) + self._evaluate()
        if kind == STEP_PRECOMMIT:
            # L65-67 OnTimeoutPrecommit: next round.
            return self._start_round(round_ + 1)
        return []

    # -- the upon-rules ------------------------------------------------------------------

    def _evaluate(self) -> list[Effect]:
        """Apply every rule whose condition now holds, until none does."""
        effects: list[Effect] = []
        while not self.decided:
            step = self._apply_one_rule()
            if step is None:
                break
            effects += step
        return effects

    def _apply_one_rule(self) -> list[Effect] | None:
        h, r = self.height, self.round
        current = self._round(r)
        proposal = current.proposal

        # L49-54: a proposal of any round with 2f+1 precommits for it decides.
        for rr, state in sorted(self.rounds.items()):
            for p in state.proposals.values():
                if self._quorum(state.precommits.power_for(p.block_hash)) and self._valid(p.block):
                    return self._decide(p, rr, state)

        # L55-56: f+1 messages of a higher round make us skip to it.
        for rr in sorted(self.rounds):
            if rr > r:
                state = self.rounds[rr]
                senders = set(state.prevotes.votes) | set(state.precommits.votes)
                validators = self.validators
                assert validators is not None
                power = sum(validators.get_power(v) for v in senders)
                if self._one_third(power):
                    return self._start_round(rr)

        if self.step == STEP_PROPOSE and proposal is not None:
            block = proposal.block
            if proposal.pol_round == -1:
                # L22-27.
                self.step = STEP_PREVOTE
                ok = self._valid(block) and (
                    self.locked_round == -1 or self._same(self.locked_value, block)
                )
                return self._sign_vote(PREVOTE, block.hash if ok else NIL)
            vr = proposal.pol_round
            pol = self.rounds.get(vr)
            if 0 <= vr < r and pol is not None and self._quorum(pol.prevotes.power_for(block.hash)):
                # L28-33.
                self.step = STEP_PREVOTE
                ok = self._valid(block) and (
                    self.locked_round <= vr or self._same(self.locked_value, block)
                )
                return self._sign_vote(PREVOTE, block.hash if ok else NIL)

        if (
            self.step == STEP_PREVOTE
            and not current.prevote_timeout_scheduled
            and self._quorum(current.prevotes.total)
        ):
            # L34-35.
            current.prevote_timeout_scheduled = True
            return [ScheduleTimeout(STEP_PREVOTE, h, r, self.timeouts.prevote(r))]

        polka = next(
            (
                p
                for p in current.proposals.values()
                if self._quorum(current.prevotes.power_for(p.block_hash))
            ),
            None,
        )
        if (
            polka is not None
            and self.step >= STEP_PREVOTE
            and not current.locked_on_36
            and self._valid(polka.block)
        ):
            # L36-43.
            proposal = polka
            current.locked_on_36 = True
            effects: list[Effect] = []
            # The valid value is set first, so the record written before the precommit
            # is signed holds it too (a restarted proposer then re-proposes it).
            self.valid_value = proposal.block
            self.valid_round = r
            if self.step == STEP_PREVOTE:
                self.locked_value = proposal.block
                self.locked_round = r
                self.step = STEP_PRECOMMIT
                effects += self._sign_vote(PRECOMMIT, proposal.block_hash)
            return effects

        if self.step == STEP_PREVOTE and self._quorum(current.prevotes.power_for(NIL)):
            # L44-46.
            self.step = STEP_PRECOMMIT
            return self._sign_vote(PRECOMMIT, NIL)

        if not current.precommit_timeout_scheduled and self._quorum(current.precommits.total):
            # L47-48.
            current.precommit_timeout_scheduled = True
            return [ScheduleTimeout(STEP_PRECOMMIT, h, r, self.timeouts.precommit(r))]

        return None

    @staticmethod
    def _same(a: Block | None, b: Block) -> bool:
        return a is not None and a.hash == b.hash

    def _decide(self, proposal: Proposal, round_: int, state: _RoundState) -> list[Effect]:
        self.decided = True
        block_hash = proposal.block_hash
        signatures = sorted(
            (
                CommitSignature(v.validator, v.signature)
                for v in state.precommits.by_block[block_hash].values()
            ),
            key=lambda s: s.public_key,
        )
        commit = Commit(self.height, round_, block_hash, tuple(signatures))
        return [Decide(proposal.block, commit)]
