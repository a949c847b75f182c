"""Peer-to-peer networking: authenticated encrypted links, gossip, block sync."""
