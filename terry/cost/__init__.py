"""Cost: what the fleet costs, where it could cost less, and what a proposal changes.

``prices`` reads the price list in the GitOps repository (``costs/prices.yml``), ``hosts``
what each inventory host runs on (instance type, volume), ``usage`` its utilisation from
Prometheus, ``rules`` the recommendations (downsize, idle, spot, over-sized volume),
``report`` and ``format`` the report, ``history`` the cost over time, ``change`` the gate's
``cost`` input, ``savings`` the savings achieved (docs/cost.md).
"""
