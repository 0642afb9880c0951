"""Sloth's ``prometheus/v1`` specs: one service, several SLOs, each with ``sli.events``
(``error_query`` and ``total_query``) or ``sli.raw.error_ratio_query``, every query saying
where the range goes with ``{{.window}}`` (or ``{{ .window }}``). Sloth has no period in the
spec: Terry's default is 30 days, as Sloth's. SLI plugins are Sloth's own and refused."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from terry.errors import ConfigError
from terry.promql import promql_problem
from terry.slo.fields import NAME, Model, Number, PromLabels, Templates
from terry.slo.objective import (
    ALERT,
    DEFAULT_PERIOD,
    SLO,
    WINDOW,
    WINDOW_SAMPLE,
    Alerting,
    normal_query,
)

__all__ = ["from_sloth"]


def _windowed(value: str) -> str:
    value = normal_query(value)
    if WINDOW not in value:
        raise ValueError(f"the query must say where the range goes with {WINDOW}")
    if problem := promql_problem(value, {WINDOW: WINDOW_SAMPLE}):
        raise ValueError(problem)
    return value


Windowed = Annotated[str, Field(min_length=1)]


class _SlothEvents(Model):
    error_query: Windowed
    total_query: Windowed

    _check = field_validator("error_query", "total_query")(_windowed)

    @model_validator(mode="after")
    def _apart(self) -> _SlothEvents:
        if self.error_query == self.total_query:  # every event an error: never a budget
            raise ValueError("error_query and total_query are the same query")
        return self


class _SlothRaw(Model):
    error_ratio_query: Windowed

    _check = field_validator("error_ratio_query")(_windowed)


class _SlothSLI(Model):
    events: _SlothEvents | None = None
    raw: _SlothRaw | None = None
    plugin: dict[str, Any] | None = None

    @field_validator("plugin")
    @classmethod
    def _no_plugin(cls, value: dict[str, Any] | None) -> None:
        if value is not None:
            named = f" ({value['id']})" if value.get("id") else ""
            raise ValueError(
                f"SLI plugins are Sloth's own{named}: Terry cannot run them; write the "
                "queries as sli.events (error_query, total_query) or sli.raw"
            )
        return None

    @model_validator(mode="after")
    def _one_kind(self) -> _SlothSLI:
        if self.events is not None and self.raw is not None:
            raise ValueError("give events or raw, not both")
        return self


class _SlothAlert(Model):
    disable: bool = False
    labels: PromLabels = Field(default_factory=dict)
    annotations: Templates = Field(default_factory=dict)


class _SlothAlerting(Model):
    """Sloth's ``alerting``: Terry writes its page alert (the 1h/5m and 6h/30m pairs);
    ``ticket_alert`` is read and not written (Terry records no 1d or 3d windows)."""

    # the alerts' alertname, a label value: any text on one line (Sloth's own examples
    # have slo_foo-bar_grpc-latency_fail)
    name: str = Field(default=ALERT, pattern=r"^[^\x00-\x1f\x7f]{1,253}$")
    labels: PromLabels = Field(default_factory=dict)
    annotations: Templates = Field(default_factory=dict)
    page_alert: _SlothAlert = Field(default_factory=_SlothAlert)
    ticket_alert: _SlothAlert = Field(default_factory=_SlothAlert)


def _no_slo_plugins(value: Any) -> None:
    """Sloth's SLO plugins (``slo_plugins``, an SLO's ``plugins``) rewrite the rules Sloth
    writes (another SLI recording, no page alert...): Terry writes its own and cannot run
    them, so a spec that has a chain of them is refused rather than read as if it had
    none."""
    if not isinstance(value, dict) or not (value.get("chain") or value.get("overridePrevious")):
        return None
    chain = value.get("chain") or ()
    ids = [str(p.get("id")) for p in chain if isinstance(p, dict) and p.get("id")]
    named = f" ({', '.join(ids)})" if ids else ""
    raise ValueError(
        f"Sloth's SLO plugins{named} change the rules Sloth writes, and Terry cannot run "
        "them: remove them to have Terry's rules (and budget) for this SLO, or keep the "
        "spec for Sloth alone"
    )


class _SlothSLO(Model):
    name: str = Field(pattern=NAME)
    objective: Number = Field(gt=0, lt=100)
    description: str = ""
    sli: _SlothSLI
    labels: PromLabels = Field(default_factory=dict)
    alerting: _SlothAlerting = Field(default_factory=_SlothAlerting)
    plugins: Any = None

    _plugins = field_validator("plugins")(_no_slo_plugins)


class _SlothSpec(Model):
    version: Literal["prometheus/v1"]
    service: str = Field(pattern=NAME)
    labels: PromLabels = Field(default_factory=dict)
    slos: list[_SlothSLO] = Field(min_length=1)
    slo_plugins: Any = None

    _plugins = field_validator("slo_plugins")(_no_slo_plugins)


def from_sloth(doc: dict[str, Any], source: str) -> list[SLO]:
    """The SLOs of one Sloth document (pydantic's ``ValidationError`` when a field is
    wrong: the caller says it as a ``ConfigError``)."""
    spec = _SlothSpec.model_validate(doc)
    out = []
    for n, slo in enumerate(spec.slos):
        if slo.sli.events is not None:
            errors, total = slo.sli.events.error_query, slo.sli.events.total_query
        elif slo.sli.raw is not None:
            errors, total = slo.sli.raw.error_ratio_query, None
        else:
            raise ConfigError(f"{source}: slos[{n}].sli: give events or raw")
        out.append(
            SLO(
                service=spec.service,
                name=slo.name,
                objective=slo.objective,
                period_seconds=DEFAULT_PERIOD,
                errors=errors,
                total=total,
                description=slo.description,
                source=source,
                format="sloth",
                labels={**spec.labels, **slo.labels},
                alerting=Alerting(
                    rule_labels={**spec.labels, **slo.labels},
                    name=slo.alerting.name,
                    labels={**slo.alerting.labels, **slo.alerting.page_alert.labels},
                    annotations={
                        **slo.alerting.annotations,
                        **slo.alerting.page_alert.annotations,
                    },
                    page=not slo.alerting.page_alert.disable,
                ),
            )
        )
    return out
