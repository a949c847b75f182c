"""Checking a batch of Ed25519 signatures: the work a verifier process is given.

This module imports nothing but the key functions, so a verifier process started fresh
(``spawn``) is ready after loading PyNaCl.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence

from civicledger.crypto.keys import is_valid_signature

__all__ = ["check_signatures", "exit_with_parent"]

#: A verifier process looks this often (s) whether its parent is still alive.
PARENT_POLL_S = 0.5


def exit_with_parent() -> None:
    """Start a thread that ends this process once its parent has died (a process pool's
    worker waits for work forever otherwise: it holds both ends of its work queue, so it
    never sees the parent's end close)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def check_signatures(items: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """``[is_valid_signature(public_key, message, signature) for each item]``."""
    return [is_valid_signature(key, message, signature) for key, message, signature in items]
