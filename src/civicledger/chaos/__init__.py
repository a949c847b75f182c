"""Chaos scenarios: TOML manifests of faults run against real node processes, then checked.

``civic chaos run FILE`` runs one manifest (``manifest``): a local network whose links go
through userspace proxies (``proxy``), a bank workload (``workload``), faults on a
timeline (``proxy`` for links, ``faults`` for processes), and black-box checkers
(``checkers``) whose results are compared with the manifest's expectation
(``runner``, ``report``).
"""
