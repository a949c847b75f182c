"""Python client of a Civic Ledger node's HTTP API; the ``civic`` CLI is built on it.

Example::

    from civicledger.client import Client
    from civicledger.crypto.keys import KeyPair

    client = Client("http://127.0.0.1:8545")
    key = KeyPair.generate()
    result = client.send(key, "documents", "register",
                         {"id": "decree-17", "sha256": digest, "title": "Decree 17"})
    print(result["receipt"]["status"])
"""

from civicledger.client.client import ApiError, Client, sha256_file

__all__ = ["ApiError", "Client", "sha256_file"]
