"""``python -m civicledger`` runs the ``civic`` command line."""

from civicledger.cli.main import main

main()
