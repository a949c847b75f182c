"""The bank workload: one transaction per (sender, nonce), transfers within the set."""

from __future__ import annotations

from civicledger.chaos.workload import BankLoad, workload_accounts


def load(seed: int = 1) -> BankLoad:
    return BankLoad(
        chain_id="test-1",
        accounts=workload_accounts(seed, 4),
        rate=10,
        seed=seed,
        urls=lambda: [],
    )


def test_chaos_workload_resubmission_is_the_same_transaction() -> None:
    first, again = load(), load()
    sender = first.accounts[2]
    for nonce in range(20):
        assert first.transfer(sender, nonce).tx_id == again.transfer(sender, nonce).tx_id
    assert first.transfer(sender, 0).tx_id != first.transfer(sender, 1).tx_id
    assert load(1).transfer(sender, 0).tx_id != load(2).transfer(sender, 0).tx_id


def test_chaos_workload_transfers_stay_within_the_accounts() -> None:
    bank = load()
    addresses = {k.address for k in bank.accounts}
    for sender in bank.accounts:
        for nonce in range(25):
            tx = bank.transfer(sender, nonce)
            assert (tx.contract, tx.method) == ("accounts", "transfer")
            assert tx.args["to"] in addresses - {sender.address}
            amount = tx.args["amount"]
            assert isinstance(amount, int) and 1 <= amount <= 1000
