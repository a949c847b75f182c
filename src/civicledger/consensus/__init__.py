"""Consensus engines."""
