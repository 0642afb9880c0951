"""Service level objectives as code: specs in the GitOps repository (``slos/*.yml``, Sloth's
``prometheus/v1`` or OpenSLO's ``SLO`` v1 with a ratio metric), their error budgets and burn
rates read from Prometheus, and the Prometheus rules that watch them.

- ``spec``: parse both formats into one ``SLO`` (every bad field a ``ConfigError`` naming its
  file and field);
- ``budget``: the arithmetic (SLI, budget remaining, burn rates over the SRE workbook's
  multi-window pairs), pure;
- ``status``: ask Prometheus, one instant query per window, unknown when it cannot tell;
- ``services``: which inventory hosts serve a service (``terry_labels: {service: X}``) and the
  budgets of the services a proposal touches, as the gate's ``slo`` input;
- ``rules``: recording and multiwindow burn-rate alerting rules from the same specs.
"""
