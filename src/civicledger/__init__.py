"""Civic Ledger: a distributed ledger for public administrations."""

__version__ = "0.1.0"
