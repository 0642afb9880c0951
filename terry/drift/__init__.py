"""Drift: where live hosts differ from the desired state in the GitOps repository.

``scan`` runs a facts probe and ``playbooks/site.yml`` in check mode with diff
(``terry.drift.probe``), turns what would change into ``DriftItem``s
(``terry.drift.items``), and records the scan, each item marked new, persisting or
resolved against the host's previous scan (``terry.drift.ledger``). ``terry.drift.report``
renders scans as Markdown, HTML or JSON.
"""
