"""Canary waves: the order a proposal over many hosts rolls out in.

A proposal over more than ``canary.min_hosts`` hosts goes out in waves: a canary first
(``canary.percent`` of the hosts, at least one), watched, then the rest: the hosts outside
production, then production. The canary is never a production host while a host of another
environment is in the set, so a remedy meets staging before it meets production. That holds
for a few hosts too: a proposal over at most ``min_hosts`` hosts that mixes production with
other environments goes out in two waves, the others (its canary), then production. Within an
environment hosts go by name, so the plan is the same every time it is drawn (the gate
judges the plan the apply then follows).

The plan is data (``Wave``): the gate's input carries it (``waves``), so policy can demand a
smaller canary in production (policies/canary.rego).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from terry.environments import PRODUCTION, UNKNOWN, environment_name

__all__ = ["Wave", "one_wave", "plan_waves"]


@dataclass(frozen=True)
class Wave:
    index: int
    hosts: tuple[str, ...]
    environments: tuple[str, ...]  # of its hosts, sorted, once each
    canary: bool = False  # the first of several waves: watched before the next

    def as_input(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "size": len(self.hosts),
            "hosts": list(self.hosts),
            "environments": list(self.environments),
            "canary": self.canary,
        }


def plan_waves(
    hosts: Sequence[tuple[str, str | None]], *, min_hosts: int, percent: float
) -> tuple[Wave, ...]:
    """The waves for ``hosts`` (name, environment): one wave when there are at most
    ``min_hosts`` (two when they mix production with others: the others, then production);
    else a canary, the rest outside production, then production."""
    envs = {name: environment_name(env) or UNKNOWN for name, env in hosts}
    # not production first, then by name
    ordered = sorted(envs, key=lambda n: (envs[n] == PRODUCTION, n))
    outside = [n for n in ordered if envs[n] != PRODUCTION]
    if len(ordered) <= min_hosts:
        if len(outside) in (0, len(ordered)):
            return one_wave(hosts)
        size = len(outside)  # few hosts, but production among others: those are its canary
    else:
        # the percent as written (8.8 is 88/10, not the float just above it): 375 hosts at
        # 8.8% are a canary of 33, not 34
        size = max(1, math.ceil(len(ordered) * Fraction(str(percent)) / 100))
        if outside:
            size = min(size, len(outside))  # production never in the canary while others exist
    canary, rest = ordered[:size], ordered[size:]
    groups = [
        [n for n in rest if envs[n] != PRODUCTION],
        [n for n in rest if envs[n] == PRODUCTION],
    ]
    waves = [_wave(0, canary, envs, canary=True)]
    for group in groups:
        if group:
            waves.append(_wave(len(waves), group, envs))
    if len(waves) == 1:  # nothing after the canary: it is just one wave
        return one_wave(hosts)
    return tuple(waves)


def one_wave(hosts: Sequence[tuple[str, str | None]]) -> tuple[Wave, ...]:
    """``hosts`` (name, environment) as the one wave of a proposal applied in one run (a
    drift fix, an inventory edit: checks that judge the whole), whatever their number."""
    envs = {name: environment_name(env) or UNKNOWN for name, env in hosts}
    return (_wave(0, sorted(envs), envs),) if envs else ()


def judged_waves(hosts: Sequence[tuple[str, str | None, int | None]]) -> tuple[Wave, ...] | None:
    """The waves the gate judged, from each host's recorded wave (name, environment, wave);
    None when a host has none (a proposal gated before waves were recorded)."""
    if not hosts or any(wave is None for _n, _e, wave in hosts):
        return None
    envs = {name: env or "unknown" for name, env, _w in hosts}
    indices = sorted({wave for _n, _e, wave in hosts if wave is not None})
    several = len(indices) > 1
    return tuple(
        _wave(
            n,
            sorted(name for name, _e, wave in hosts if wave == index),
            envs,
            canary=several and n == 0,
        )
        for n, index in enumerate(indices)
    )


def _wave(index: int, names: Sequence[str], envs: dict[str, str], *, canary: bool = False) -> Wave:
    return Wave(index, tuple(names), tuple(sorted({envs[n] for n in names})), canary)
