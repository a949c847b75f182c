"""Hashing, Ed25519 keys and the encrypted keystore."""
