"""The Tendermint BFT consensus engine (Proof of Authority)."""
