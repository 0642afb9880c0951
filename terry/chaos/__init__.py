"""Chaos experiments: Terry proves its own resilience (docs/chaos.md).

Experiments are Chaos Toolkit files in the GitOps repository (``experiments/``), run through
chaostoolkit-lib. Terry supplies the extension: actions that inject a fault through the
``chaos`` role (``terry.chaos.actions``) and probes that read Prometheus and Terry's own
record (``terry.chaos.probes``). A run is journalled before its fault goes in
(``terry.chaos.journal``), so a fault is removed whatever happens, on the next start at the
latest; what Terry did about it is read back from the store (``terry.chaos.record``) and
summed up in the resilience report (``terry.chaos.report``).

This package reads the store and runs ansible; it never runs Terry's pipeline (the running
``terry serve`` does, as it would for any real fault).
"""
