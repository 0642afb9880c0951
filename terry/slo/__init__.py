"""Service level objectives as code: specs in the GitOps repository (``slos/*.yml``, Sloth's
``prometheus/v1`` or OpenSLO's ``SLO`` v1 or v1alpha with a ratio metric), their error
budgets and burn rates read from Prometheus, and the Prometheus rules that watch them.

- ``spec``: which format a document is in, and every spec under ``slos/``, read into one
  ``SLO`` (``objective``; every bad field a ``ConfigError`` naming its file and field): Sloth's
  in ``sloth``, OpenSLO's in ``openslo`` (v1) and ``openslo_alpha`` (v1alpha), their ratios'
  queries in ``ratio``, time windows in ``calendar``, the models' shared pieces in ``fields``;
- ``budget``: the arithmetic (SLI, budget remaining, burn rates over the SRE workbook's
  multi-window pairs), pure;
- ``status``: ask Prometheus, one instant query per window, unknown when it cannot tell;
- ``services``: which inventory hosts serve a service (``terry_labels: {service: X}``) and the
  budgets of the services a proposal touches, as the gate's ``slo`` input;
- ``rules``: recording and multiwindow burn-rate alerting rules from the same specs.
"""
