"""Typed configuration: defaults < ``terry.yml`` < ``TERRY_*`` environment < flags.

The configuration is read once per command and passed in; nothing here is global.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from terry import yaml_unique
from terry.ai.modules import DEFAULT_ALLOWED_MODULES, DEFAULT_ALLOWED_PATHS, check_allowed_modules
from terry.durations import format_duration, parse_duration
from terry.environments import environment_names
from terry.errors import ConfigError
from terry.promql import promql_problem

__all__ = [
    "CONFIG_FILE",
    "Config",
    "PrometheusConfig",
    "find_repo",
    "load_config",
    "prometheus_url",
]

CONFIG_FILE = "terry.yml"


# The largest number terry.yml takes: seconds, counts and amounts past it are mistakes, and
# would overflow what they are handed to (a timedelta, a sleep).
_MAX_NUMBER = 1e9


class _Model(BaseModel):
    """Every section: unknown keys refused; numbers finite, at most ``_MAX_NUMBER``, and
    never a YAML boolean (``min_hosts: true`` is a mistake, not 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and cls._numeric(info):
            raise ValueError("must be a number, not true or false")
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _not_too_large(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, int | float) and cls._numeric(info) and abs(value) > _MAX_NUMBER:
            raise ValueError(f"must be at most {_MAX_NUMBER:.0e}")
        return value

    @classmethod
    def _numeric(cls, info: ValidationInfo) -> bool:
        field = cls.model_fields.get(info.field_name or "")
        return field is not None and field.annotation in (int, float, int | None, float | None)


def is_http_url(text: str) -> bool:
    """An http(s) URL with a host: what every server Terry talks to is given as."""
    parts = urlsplit(text.strip())
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _server_url(value: str | None) -> str | None:
    """Checked when the configuration is read, not first when the server is asked. The
    value refused is repeated without what may be credentials (``user:password@``): a URL
    with no scheme is one the redactor cannot take apart."""
    if value is not None and not is_http_url(value):
        shown = f"...@{value.rsplit('@', 1)[1]}" if "@" in value else value
        raise ValueError(
            f"must be an http(s) URL with a host (https://host.example.com), not {shown[:100]!r}"
        )
    return value


# The URL of a server Terry talks to (Prometheus, Argo CD, AWX, OPA).
_ServerUrl = Annotated[str | None, AfterValidator(_server_url)]


class PolicyConfig(_Model):
    engine: Literal["regorus", "opa"] = "regorus"
    path: str = "policies"
    query: str = "data.terry.gate"
    timeout: float = Field(default=5.0, gt=0)
    opa_url: _ServerUrl = None


# The name of an environment variable (a credential's; never the credential).
_EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]


class PrometheusConfig(_Model):
    url: _ServerUrl = None
    timeout: float = Field(default=10.0, gt=0)
    # How long verification waits for the metric to settle before judging.
    settle_seconds: float = Field(default=0.0, ge=0)
    # Credentials, read from the environment (terry.prometheus): a bearer token, or basic
    # auth's username with the variable holding its password.
    token_env: _EnvName | None = None
    username: str | None = Field(default=None, min_length=1, pattern=r"^[^:\s]+$")
    password_env: _EnvName | None = None

    @model_validator(mode="after")
    def _one_credential(self) -> PrometheusConfig:
        if self.token_env and (self.username or self.password_env):
            raise ValueError("give token_env (a bearer token) or username and password_env")
        if (self.username is None) != (self.password_env is None):
            raise ValueError("basic auth needs both username and password_env")
        return self


def prometheus_url(prom: str | PrometheusConfig | None) -> str | None:
    """The URL of a Prometheus given as its configuration or as a bare URL; None: none."""
    return prom.url if isinstance(prom, PrometheusConfig) else prom or None


# Environment names, read as the inventory's are (terry.environments): any case, each once.
_Environments = Annotated[list[str], AfterValidator(environment_names)]
# A span written "90s", "10m", "6h", "7d" (or a number of seconds); held as seconds.
Duration = Annotated[float, BeforeValidator(parse_duration)]
# The farthest a forecast looks (ten years): a trend says nothing that far out, and a crossing
# beyond it could not even be written as a date.
MAX_HORIZON = 3650 * 86400.0

# node_exporter's real filesystems: no pseudo, memory or container layers, no /dev, /proc...
DEFAULT_DISK_FILTER = (
    'fstype!~"tmpfs|ramfs|devtmpfs|overlay|squashfs|nsfs|autofs|proc|sysfs|fuse.*",'
    'mountpoint!~"/(dev|proc|sys|run|boot/efi)($|/).*"'
)
DEFAULT_MEMORY_QUERY = "node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes"
_MAX_POINTS = 11_000  # Prometheus answers at most this many points per series


# What ``terry forecast`` compares hosts on: name -> PromQL answering one value per host
# (node_exporter's metrics; ``host``/``instance`` label as for alerts).
DEFAULT_ANOMALY_FEATURES = {
    "load_per_cpu": 'node_load1 / count without (cpu, mode) (node_cpu_seconds_total{mode="idle"})',
    "cpu_busy": '1 - avg without (cpu, mode) (rate(node_cpu_seconds_total{mode="idle"}[5m]))',
    "memory_used": "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
    "disk_io_busy": "max without (device) (rate(node_disk_io_time_seconds_total[5m]))",
    "net_rx_bytes": (
        'sum without (device) (rate(node_network_receive_bytes_total{device!="lo"}[5m]))'
    ),
    "net_tx_bytes": (
        'sum without (device) (rate(node_network_transmit_bytes_total{device!="lo"}[5m]))'
    ),
    "fs_used_max": (
        f"max without (device, fstype, mountpoint) (1 - node_filesystem_avail_bytes"
        f"{{{DEFAULT_DISK_FILTER}}} / node_filesystem_size_bytes{{{DEFAULT_DISK_FILTER}}})"
    ),
}
# A feature's name (shown in reports and incidents) and its PromQL.
_FeatureName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
_PromQL = Annotated[str, Field(min_length=1, pattern=r"\S")]


class AnomalyConfig(_Model):
    """Hosts whose node metrics stand out from the fleet's and from their own history
    (an IsolationForest; ``terry.forecast.anomaly``), reported for review only."""

    enabled: bool = True
    # History read per host; the last ``current`` of it is "now", earlier spans of the same
    # length are the host's own history (and the forest's other rows).
    window: Duration = 6 * 3600.0
    current: Duration = 900.0
    # Query resolution (default: current / 5, at least 1 s).
    step: Duration | None = None
    features: dict[_FeatureName, _PromQL] = Field(
        default_factory=lambda: dict(DEFAULT_ANOMALY_FEATURES)
    )
    # A host is anomalous when the forest's score is above this (0..1, 0.5 its cut-off) and
    # one metric is at least min_z robust standard deviations from the fleet or its history.
    score_threshold: float = Field(default=0.5, gt=0, lt=1)
    min_z: float = Field(default=4.0, gt=0)
    # Fewer hosts with recent metrics than this and no one is judged: a fleet of two or three
    # is no yardstick (one host of another kind would always stand out).
    min_hosts: int = Field(default=5, ge=2)

    @property
    def resolution(self) -> float:
        return self.step if self.step is not None else max(1.0, self.current / 5)

    @model_validator(mode="after")
    def _spans_and_features(self) -> AnomalyConfig:
        if self.current > self.window:
            raise ValueError(
                f"current ({format_duration(self.current)}) is longer than window "
                f"({format_duration(self.window)})"
            )
        if self.resolution > self.current:
            raise ValueError(
                f"step ({format_duration(self.resolution)}) is longer than current "
                f"({format_duration(self.current)}): no sample would be recent"
            )
        if self.window / self.resolution > _MAX_POINTS:
            raise ValueError(
                f"a step of {format_duration(self.resolution)} over a window of "
                f"{format_duration(self.window)} asks for more than {_MAX_POINTS} points"
            )
        if self.enabled and not self.features:
            raise ValueError("features is empty: name at least one, or set enabled: false")
        return self


class ForecastConfig(_Model):
    """``terry forecast``: when filesystems will cross ``disk_threshold`` and whether memory
    grows like a leak, from Prometheus range data (``prometheus.url``)."""

    # How much history is read, and at which resolution (default: lookback / 1000, >= 1 s).
    lookback: Duration = 7 * 86400.0
    step: Duration | None = None
    # How far ahead a crossing is reported; crossings sooner than lead_time are prevented:
    # a preventive incident and the disk remedy's proposal, before any alert fires.
    horizon: Duration = Field(default=7 * 86400.0, gt=0, le=MAX_HORIZON)
    lead_time: Duration = 2 * 86400.0
    # Percent used (node_exporter: 1 - avail / size), as the DiskUsageHigh alert measures.
    disk_threshold: int = Field(default=80, ge=1, le=99)
    # Label matchers for the default disk query (which filesystems are forecast) ...
    disk_filter: str = DEFAULT_DISK_FILTER
    # ... or a whole PromQL query: a used fraction 0..1 per series, with a mountpoint label.
    disk_query: str | None = None
    # Used memory per host (bytes or a fraction), judged for leaks; null: no leak check.
    memory_query: str | None = DEFAULT_MEMORY_QUERY
    # Data a forecast needs (default: the forecasting core's, 24 points over 6 h; a leak
    # check 12 h). Small values make sense on a lab whose history is minutes long.
    min_points: int | None = Field(default=None, ge=4)
    min_span: Duration | None = None
    # Open preventive incidents and proposals (--propose / --no-propose win).
    propose: bool = True
    anomaly: AnomalyConfig = Field(default_factory=AnomalyConfig)

    @property
    def resolution(self) -> float:
        """The query step: ``step``, or lookback / 1000 and at least one second."""
        return self.step if self.step is not None else max(1.0, self.lookback / 1000)

    @property
    def disk_promql(self) -> str:
        if self.disk_query:
            return self.disk_query
        f = self.disk_filter
        return f"1 - node_filesystem_avail_bytes{{{f}}} / node_filesystem_size_bytes{{{f}}}"

    @model_validator(mode="after")
    def _spans(self) -> ForecastConfig:
        step, lookback = format_duration(self.resolution), format_duration(self.lookback)
        points = self.lookback / self.resolution
        if points > _MAX_POINTS:
            raise ValueError(
                f"a step of {step} over a lookback of {lookback} asks for {points:.0f} points; "
                f"Prometheus answers at most {_MAX_POINTS}: raise step"
            )
        if points < 4:
            raise ValueError(
                f"a step of {step} leaves {points:.0f} points in a lookback of {lookback}: "
                "lower step or raise lookback"
            )
        if self.min_span is not None and self.min_span > self.lookback:
            raise ValueError(
                f"min_span ({format_duration(self.min_span)}) is longer than lookback "
                f"({lookback}): no forecast could ever have enough data"
            )
        if self.disk_query is not None and not self.disk_query.strip():
            raise ValueError("disk_query is empty: remove it to use the default")
        return self


class RunnerConfig(_Model):
    forks: int = Field(default=10, ge=1)
    timeout: int = Field(default=900, ge=1)
    # How long an apply waits for another run on the same host to finish.
    lock_wait: float = Field(default=600.0, ge=0)
    # Extra environment for ansible (never secrets; those come from the process env).
    env: dict[str, str] = Field(default_factory=dict)
    # Ansible's strategy: "linear" (Ansible's default) or Mitogen's "mitogen_linear" /
    # "mitogen_free" (pip install 'terry[mitogen]'): one Python per host kept over SSH
    # instead of a module upload per task (terry.appliers.strategy; bench/mttr.py measures it).
    # TERRY_RUNNER_STRATEGY overrides it (the test suite runs under either).
    strategy: Literal["linear", "free", "mitogen_linear", "mitogen_free"] = "linear"

    def ansible_env(self) -> dict[str, str]:
        """What every ansible run of Terry's gets: the strategy's settings, then ``env``."""
        from terry.appliers.strategy import strategy_env

        return {**strategy_env(self.strategy), **self.env}


class StormConfig(_Model):
    """Storm folding (terry.proposals.storm): incidents needing the same remedy with the same
    parameters join one proposal over many hosts instead of one proposal each."""

    # An incident joins an open proposal made at most this many seconds ago (0: never).
    window: float = Field(default=60.0, ge=0)
    # terry serve's worker diagnoses a batch once no new incident came for this many seconds
    # (its alerts come as separate webhooks: one per Alertmanager group), so a storm is one
    # proposal rather than one and its next wave; 0: at once. It waits at most gather_max.
    gather: float = Field(default=1.5, ge=0, le=60)
    gather_max: float = Field(default=10.0, ge=0, le=600)

    @model_validator(mode="after")
    def _gather_max(self) -> StormConfig:
        if self.gather_max < self.gather:
            raise ValueError(
                f"storm.gather_max ({self.gather_max:g}) is less than storm.gather "
                f"({self.gather:g}): the worker waits at most gather_max for quiet"
            )
        return self


class CanaryConfig(_Model):
    """Canary waves (terry.proposals.waves): a proposal over more than ``min_hosts`` hosts
    rolls out to a canary first, is watched, then the rest; fewer hosts that mix production
    with other environments go as two waves, the others (the canary), then production."""

    min_hosts: int = Field(default=3, ge=1)
    percent: float = Field(default=10.0, gt=0, le=100)  # of the hosts; at least one
    watch: float = Field(default=60.0, ge=0)  # seconds the canary must hold before the rest
    # PromQL templates ({host} filled, higher is worse) compared before/after the canary on
    # every host of the proposal, inside the wave and outside it.
    queries: list[str] = Field(default_factory=list)
    tolerance: float = Field(default=0.10, ge=0)  # a rise beyond this fraction is worse

    @field_validator("queries")
    @classmethod
    def _promql(cls, queries: list[str]) -> list[str]:
        for n, query in enumerate(queries):  # {host} is a host's name, inside a string
            if problem := promql_problem(query, {"{host}": "web-01"}):
                raise ValueError(f"query {n + 1} is {problem}: {query[:120]!r}")
        return queries


class ServerConfig(_Model):
    listen: str = "127.0.0.1:9180"
    # Name of the environment variable that holds the webhook bearer token (Alertmanager's;
    # without it terry serve refuses to start unless given --insecure-no-auth).
    token_env: str = "TERRY_WEBHOOK_TOKEN"
    # Name of the environment variable holding the readers' tokens (the JSON API, /metrics):
    # NAME:TOKEN entries separated by commas, spaces or lines, or @/absolute/path of a file
    # of NAME:TOKEN lines. The name is what the log shows; the token never is.
    read_tokens_env: str = "TERRY_READ_TOKENS"
    # true: /metrics answers without a reader token (a Prometheus that cannot send one).
    metrics_public: bool = False
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Seconds /healthz waits for its write check of the store before answering 503.
    health_timeout: float = Field(default=2.0, gt=0, le=60)
    # The web console (/console): operators' tokens (NAME:TOKEN, like read_tokens_env) may
    # approve and reject there; readers' tokens only read.
    operator_tokens_env: str = "TERRY_OPERATOR_TOKENS"
    # Variable holding the secret that signs console sessions (unset: a new one per start,
    # so a restart logs everyone out).
    console_secret_env: str = "TERRY_CONSOLE_SECRET"
    # Minutes a console login lasts.
    session_minutes: int = Field(default=480, ge=1, le=10080)
    # Where people reach terry serve (https://terry.example.org): links in messages, the
    # console's Origin check and Secure cookies. Empty: the request's own host.
    public_url: str = Field(default="", pattern=r"^$|^https?://[^\s/]+(/[^\s]*)?$")


class GitHubConfig(_Model):
    # owner/name of the GitOps repository on GitHub.
    repository: str = Field(default="", pattern=r"^$|^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    api_url: str = "https://api.github.com"
    # The git remote Terry pushes proposal branches to and fetches main from.
    remote: str = "origin"
    # Names of environment variables holding credentials (never the credentials).
    token_env: str = "GITHUB_TOKEN"
    app_id_env: str = "GITHUB_APP_ID"
    private_key_env: str = "GITHUB_APP_PRIVATE_KEY"
    installation_id_env: str = "GITHUB_APP_INSTALLATION_ID"
    webhook_secret_env: str = "TERRY_GITHUB_WEBHOOK_SECRET"
    # Reviewers to request, by environment or tenant of the proposal's hosts ("*": any).
    reviewers: dict[str, list[str]] = Field(default_factory=dict)
    team_reviewers: dict[str, list[str]] = Field(default_factory=dict)
    # Who may approve, merge by review and run /terry commands.
    allowed_users: list[str] = Field(default_factory=list)
    required_approvals: int = Field(default=1, ge=1)
    # Open and merge a pull request for merge decisions too (every change has a PR).
    pr_for_merges: bool = False
    merge_method: Literal["merge", "squash", "rebase"] = "merge"
    timeout: float = Field(default=15.0, gt=0)
    retries: int = Field(default=4, ge=0)
    # GitHub asks integrations to pace writes (secondary rate limits): seconds between them.
    seconds_between_writes: float = Field(default=1.0, ge=0)
    # terry serve polls open pull requests this often (seconds), webhooks or not.
    sync_interval: float = Field(default=60.0, gt=0)
    # Where a reviewer can read more about a proposal (e.g. terry serve's URL); optional.
    details_url: str | None = None


class ForgeConfig(_Model):
    # local: review with `terry proposals approve|reject`; github: pull requests.
    kind: Literal["local", "github"] = "local"
    github: GitHubConfig = Field(default_factory=GitHubConfig)


class ArgoCDConfig(_Model):
    """Argo CD, the applier of inventory targets labelled ``terry_applier: argocd``."""

    # The API server, e.g. https://argocd.example.com (REST under /api/v1).
    url: _ServerUrl = None
    # Name of the environment variable holding an API token (argocd account generate-token).
    token_env: str = "ARGOCD_AUTH_TOKEN"
    verify_tls: bool = True
    # How long a sync may take to reach Synced and Healthy before it counts as failed.
    timeout: float = Field(default=300.0, gt=0)
    poll_interval: float = Field(default=2.0, gt=0)
    # Per HTTP request; 5xx and connection errors are retried this many times with backoff.
    request_timeout: float = Field(default=15.0, gt=0)
    retries: int = Field(default=3, ge=0)


class AWXConfig(_Model):
    """AWX / Ansible Automation Platform, the applier of inventory hosts labelled
    ``terry_applier: awx`` (docs/awx.md)."""

    # The controller, e.g. https://awx.example.com (REST under /api/v2; AAP 2.5's gateway:
    # https://aap.example.com/api/controller).
    url: _ServerUrl = None
    # Name of the environment variable holding an OAuth2 / personal access token (Bearer).
    token_env: str = Field(default="TERRY_AWX_TOKEN", pattern=r"^[A-Z_][A-Z0-9_]*$")
    verify_tls: bool = True
    # The job template a remedy's proposals run as: "{remedy}" is the remedy's name.
    job_template: str = Field(default="terry-{remedy}", min_length=1, max_length=512)
    # Per-remedy job templates by name, when the pattern above does not fit.
    job_templates: dict[str, str] = Field(default_factory=dict)
    # Sync the job template's project (POST /projects/{id}/update/) before each launch.
    update_project: bool = True
    # How long a job (or project update) may take before Terry cancels it.
    timeout: float = Field(default=900.0, gt=0)
    # How long a canceled job may take to show that it ended; one that does not keeps its
    # hosts held for recovery ('terry serve' looks again), never freed while it may run.
    cancel_wait: float = Field(default=120.0, gt=0)
    poll_interval: float = Field(default=2.0, gt=0)
    # After a job finishes, how long to wait for AWX to finish saving its events.
    events_grace: float = Field(default=30.0, ge=0)
    # Per HTTP request; 5xx and connection errors are retried this many times with backoff.
    request_timeout: float = Field(default=15.0, gt=0)
    retries: int = Field(default=3, ge=0)

    @field_validator("job_template")
    @classmethod
    def _one_placeholder(cls, value: str) -> str:
        """``{remedy}`` is the one placeholder filled in: another (a typo) would be sent to
        AWX as written."""
        others = sorted(set(re.findall(r"\{([^{}]*)\}", value)) - {"remedy"})
        if others:
            raise ValueError(f"only {{remedy}} is filled in, not {{{others[0]}}}")
        return value


# A GitHub label name: at most 50 characters; a comma would split it in label filters.
_Label = Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[^,\x00-\x1f\x7f]+$")]


class GitHubIssueConfig(_Model):
    """An issue in ``forge.github``'s repository holding the schedule's newest report: one
    per schedule, updated in place (a new one is opened when Terry has none open)."""

    # Default: "Terry drift report (<schedule>)".
    title: str | None = Field(
        default=None, min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$"
    )
    # Set when Terry opens the issue; people may change them afterwards.
    labels: list[_Label] = Field(default_factory=list)


class DeliveryConfig(_Model):
    """Where a schedule sends its report: a directory, a webhook whose URL is in the
    environment (Slack and Discord incoming webhooks, or any endpoint taking JSON), or a
    GitHub issue updated in place."""

    dir: str | None = None
    webhook_url_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    webhook_kind: Literal["slack", "discord", "json"] = "json"
    github_issue: GitHubIssueConfig | None = None

    @model_validator(mode="after")
    def _one(self) -> DeliveryConfig:
        given = [self.dir, self.webhook_url_env, self.github_issue]
        if sum(d is not None for d in given) != 1:
            raise ValueError("a delivery is exactly one of dir, webhook_url_env, github_issue")
        return self


class ScheduleConfig(_Model):
    """A job ``terry serve`` runs on time (or ``terry schedule run NAME`` from cron)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    # Five-field cron expression, in UTC ("0 3 * * *": 03:00 every day) ...
    cron: str | None = None
    # ... or every N seconds (at most a year).
    interval: float | None = Field(default=None, ge=1, le=366 * 86400)
    # drift-scan, drift-fix (scan, then propose the reconciliation), or weekly-report (deliver
    # `terry report weekly` for the seven whole days before the run; limit is not used).
    run: Literal["drift-scan", "drift-fix", "weekly-report", "chaos"] = "drift-scan"
    limit: str | None = None
    # run: chaos: the experiment to run (a file name under experiments/, terry.chaos).
    experiment: str | None = None
    report_format: Literal["md", "html", "json"] = "md"
    deliver: list[DeliveryConfig] = Field(default_factory=list)
    # A run older than this is presumed dead: its lock may be taken over.
    timeout: float = Field(default=3600.0, gt=0)

    @field_validator("interval", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        if isinstance(value, bool):  # YAML's true is no number of seconds
            raise ValueError("expected seconds, got true or false")
        return value

    @model_validator(mode="after")
    def _when(self) -> ScheduleConfig:
        if (self.cron is None) == (self.interval is None):
            raise ValueError(f"schedule {self.name}: give either cron or interval")
        if self.cron is not None:
            from croniter import croniter

            if len(self.cron.split()) != 5:
                raise ValueError(f"schedule {self.name}: {self.cron!r} is not a 5-field cron")
            if not croniter.is_valid(self.cron):
                raise ValueError(
                    f"schedule {self.name}: {self.cron!r} is not a cron expression (minute "
                    "0-59, hour 0-23, day 1-31, month 1-12, weekday 0-7)"
                )
            try:  # a valid expression may name no day at all (31 February)
                croniter(self.cron, datetime.now(UTC)).get_next(datetime)
            except (ValueError, ArithmeticError) as exc:  # CroniterBadDateError is one
                raise ValueError(
                    f"schedule {self.name}: {self.cron!r} never fires ({exc})"
                ) from None
        if (self.run == "chaos") != (self.experiment is not None):
            raise ValueError(f"schedule {self.name}: 'experiment' goes with run: chaos, only")
        return self


class InventoryRules(_Model):
    """What ``terry inventory validate`` holds the inventory to (what policies rely on)."""

    environments: _Environments = Field(
        default_factory=lambda: ["production", "staging", "development", "test"]
    )
    # None: any tenant; a list: only these.
    tenants: list[str] | None = None
    # {label: [allowed values]} ([] = any value); None: any label.
    labels: dict[str, list[str]] | None = None


class ReportsConfig(_Model):
    """``terry report weekly``: how its "time saved" is counted (see docs/reports.md)."""

    # Minutes a person would spend fixing one incident by hand (look, fix, check).
    manual_minutes_per_fix: float = Field(default=30.0, ge=0, le=10_000)
    # Minutes a person spends reviewing and approving one proposal; subtracted from the
    # time saved by a fix that needed an approval (0 for automatic merges).
    review_minutes_per_approval: float = Field(default=5.0, ge=0, le=10_000)


class CostConfig(_Model):
    """``terry cost``: where prices are, and the thresholds of its recommendations
    (docs/cost.md). The gate's own threshold is policy data (policies/data.json)."""

    # The price list in the GitOps repository (instance and volume types, a currency).
    prices: str = "costs/prices.yml"
    # Where prices come from: the file above, or the AWS pricing API (needs credentials).
    pricing: Literal["file", "aws"] = "file"
    # Utilisation is read over these spans (the downsize and volume rules, the idle rule).
    lookback: Duration = 30 * 86400.0
    idle_lookback: Duration = 7 * 86400.0
    # A host whose busiest hour stayed under this CPU share over lookback is downsized...
    downsize_cpu_percent: float = Field(default=20.0, gt=0, le=100)
    # ...and one under this share over idle_lookback is idle.
    idle_cpu_percent: float = Field(default=10.0, gt=0, le=100)
    # A volume whose fullest hour stayed under this share is over-sized; the proposed size
    # leaves it at most volume_target_percent full.
    volume_used_percent: float = Field(default=30.0, gt=0, le=100)
    volume_target_percent: float = Field(default=60.0, gt=0, le=100)
    # Hosts labelled so (terry_labels) may run on spot instances.
    spot_label: str = "workload=batch"
    # A Kubernetes container whose busiest hour used under this share of its request (CPU or
    # memory) gets a smaller one, leaving that peak at requests_target_percent.
    requests_used_percent: float = Field(default=30.0, gt=0, le=100)
    requests_target_percent: float = Field(default=60.0, gt=0, le=100)
    # The monthly savings the roadmap aims at, in the prices' currency (the weekly report).
    savings_goal: float = Field(default=0.0, ge=0)


class AIConfig(_Model):
    """Diagnosis with Claude when no remedy matches (on when the API key is in the
    environment). Its answers are untrusted: see ``terry/ai/answer.py``."""

    enabled: bool = True
    # Name of the environment variable holding the Anthropic API key (never the key).
    api_key_env: str = Field(default="ANTHROPIC_API_KEY", pattern=r"^[A-Z_][A-Z0-9_]*$")
    model: str = Field(
        default="claude-sonnet-5-5", pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$"
    )
    # Default: https://api.anthropic.com (a proxy or gateway speaking the Messages API).
    base_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    timeout: float = Field(default=60.0, gt=0, le=600)
    # 429, 5xx, 529 and timeouts are retried this often (retry-after honoured), then fail.
    max_retries: int = Field(default=2, ge=0, le=10)
    max_tokens: int = Field(default=4096, ge=256, le=64_000)
    # Fully-qualified modules a composed playbook may use (each has an argument schema).
    allowed_modules: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOWED_MODULES))
    # ansible.builtin.command and ansible.builtin.shell may be allowed only with this.
    allow_shell: bool = False
    # Roots AI-composed tasks may touch files under (a host's terry_ai_paths wins).
    allowed_paths: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOWED_PATHS))
    # Below this confidence (0-100) a valid answer is kept for a human.
    min_confidence: int = Field(default=60, ge=0, le=100)

    @model_validator(mode="after")
    def _modules_and_paths(self) -> AIConfig:
        try:
            modules = check_allowed_modules(self.allowed_modules, allow_shell=self.allow_shell)
        except ValueError as exc:
            raise ValueError(f"allowed_modules: {exc}") from exc
        object.__setattr__(self, "allowed_modules", list(modules))
        for root in self.allowed_paths:
            if not root.startswith("/") or root == "/" or ".." in root.split("/"):
                raise ValueError(
                    f"allowed_paths: {root!r} must be an absolute directory other than /"
                )
        return self


class TracesConfig(_Model):
    """Traces (terry.traces, docs/traces.md): Terry's own spans, one trace per incident,
    exported over OTLP/HTTP; and the traces of the services an alert is about, read from
    Jaeger or Tempo as diagnosis evidence."""

    # Terry's own spans: the OTLP/HTTP base URL (http://collector:4318; /v1/traces is added).
    # Unset: the standard OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, else tracing is off.
    otlp_endpoint: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    service_name: str = Field(default="terry", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    export_timeout: float = Field(default=5.0, gt=0, le=60)
    # Where the services' traces are read (Jaeger's query API, or Tempo's HTTP API).
    jaeger_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    tempo_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    # Per request to Jaeger or Tempo; a slow or failing answer is "trace unavailable".
    timeout: float = Field(default=5.0, gt=0, le=60)
    # How far back a named service's error traces are looked for, and how many are read.
    lookback: Duration = 3600.0
    max_traces: int = Field(default=20, ge=1, le=200)
    # Alert labels or annotations naming a trace, and the service.
    trace_labels: list[str] = Field(default_factory=lambda: ["trace_id", "traceID", "traceId"])
    service_labels: list[str] = Field(default_factory=lambda: ["service", "service_name"])
    # Route the incident to the inventory host labelled service=<the guilty service>:
    # never, only when the alert names no host (unlabelled), or always.
    route: Literal["never", "unlabelled", "always"] = "unlabelled"


# What a notification route may ask for (terry.notify.events.EventKind holds the same names).
NotifyEvent = Literal[
    "incident-opened",
    "drift-found",
    "forecast-warning",
    "needs-review",
    "applied",
    "verified",
    "failed",
    "rolled-back",
    "kept-for-human",
    "resolved",
    "budget-exhausted",
    "chaos-slow",
]


class SlackAppConfig(_Model):
    """A Slack app's bot posting through the Web API (terry.notify.slack_app): review
    requests with Approve / Reject buttons, each incident's later events as thread replies."""

    # The variable holding the bot token (xoxb-...; OAuth & Permissions, scope chat:write).
    token_env: _EnvName = "TERRY_SLACK_BOT_TOKEN"
    # The channel id the bot posts to (C..., G...; the bot must be a member).
    channel: str = Field(pattern=r"^[A-Z0-9]{1,32}$")
    # Slack's Web API (another for a proxy, or a test's fake).
    api_url: str = Field(default="https://slack.com/api/", pattern=r"^https?://[^\s]+/$")


class RouteConfig(_Model):
    """One place notifications go (terry.notify): which events, for which environments,
    severities and tenants (empty: any), to the URL held by the variable ``url_env``, or to
    a Slack app's channel (``slack_app``)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    # The variable holding an apprise URL (slack://..., discord://..., mailto://...,
    # ntfy://..., json://host/path, form://host/path) or a plain https webhook URL.
    url_env: _EnvName | None = None
    # Instead of url_env: a Slack app's bot (buttons and threads, which webhooks cannot do).
    slack_app: SlackAppConfig | None = None
    # How a plain http(s) URL is spoken to: auto (Slack's and Discord's own webhook hosts
    # natively, anything else generic JSON), or a Slack- or Discord-shaped body (for
    # compatible services: Mattermost, Rocket.Chat, a proxy), or generic JSON.
    format: Literal["auto", "slack", "discord", "json"] = "auto"
    events: list[NotifyEvent] = Field(
        default_factory=lambda: ["needs-review", "failed", "rolled-back", "kept-for-human"],
        min_length=1,
    )
    environments: _Environments = Field(default_factory=list)
    severities: list[str] = Field(default_factory=list)
    tenants: list[str] = Field(default_factory=list)
    # A service's owners: only events about one of these services (budget-exhausted names
    # the services out of error budget; other events name none, so they do not pass).
    services: frozenset[str] = Field(default_factory=frozenset)

    @model_validator(mode="after")
    def _one_target(self) -> RouteConfig:
        if (self.url_env is None) == (self.slack_app is None):
            raise ValueError(f"route {self.name}: give exactly one of url_env and slack_app")
        return self


class NotificationsConfig(_Model):
    """The notifier (terry.notify): an outbox in the store, delivered by ``terry serve`` (or
    ``terry notifications deliver``) through apprise, at least once, grouped and retried."""

    routes: list[RouteConfig] = Field(default_factory=list)
    # Seconds a new notification waits so that others of its route join it in one message.
    group_window: float = Field(default=5.0, ge=0, le=3600)
    # Failed sends are retried with exponential backoff (first wait ``retry_seconds``, at
    # most ``max_retry_seconds``, with jitter); after ``max_attempts`` the row is dead.
    max_attempts: int = Field(default=8, ge=1, le=100)
    retry_seconds: float = Field(default=30.0, gt=0, le=86400)
    max_retry_seconds: float = Field(default=3600.0, gt=0, le=86400)
    # Seconds one send may take (connect and read) before it counts as failed.
    timeout: float = Field(default=10.0, gt=0, le=300)
    # Items a grouped message lists before "and N more".
    max_items: int = Field(default=10, ge=1, le=100)
    # How often terry serve looks for new events and due deliveries.
    poll_seconds: float = Field(default=2.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _unique_routes(self) -> NotificationsConfig:
        names = [r.name for r in self.routes]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"notification route names used twice: {', '.join(dupes)}")
        if self.max_retry_seconds < self.retry_seconds:
            raise ValueError(
                f"notifications.max_retry_seconds ({self.max_retry_seconds:g}) is below "
                f"retry_seconds ({self.retry_seconds:g}), the first wait it caps"
            )
        return self


# A chat identity: "slack:<team id>/<user id>" or "discord:<user id>" (terry.chat).
_ChatId = Annotated[
    str, Field(pattern=r"^(slack:[A-Z0-9]{1,32}/[A-Z0-9]{1,32}|discord:[0-9]{1,24})$")
]
_Identity = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")]


class SlackChatConfig(_Model):
    # The variable holding the app's signing secret (Basic Information -> Signing Secret).
    signing_secret_env: _EnvName = "TERRY_SLACK_SIGNING_SECRET"
    # Where follow-ups may be posted: a response_url must start with one of these.
    response_urls: list[str] = Field(default_factory=lambda: ["https://hooks.slack.com/"])
    # When set, requests from other workspaces (team ids, or an Enterprise Grid org's id)
    # are refused: an app installed in several workspaces signs all of their requests alike.
    workspaces: list[Annotated[str, Field(pattern=r"^[TE][A-Z0-9]{1,31}$")]] = Field(
        default_factory=list
    )


class DiscordChatConfig(_Model):
    # The application's public key (hex; General Information -> Public Key), or the
    # variable holding it.
    public_key: str = Field(default="", pattern=r"^$|^[0-9a-fA-F]{64}$")
    public_key_env: _EnvName = "TERRY_DISCORD_PUBLIC_KEY"
    # Follow-ups go to {api_url}/webhooks/{application id}/{token}.
    api_url: str = Field(default="https://discord.com/api/v10", pattern=r"^https?://[^\s]+$")
    # When set, interactions of another application are refused.
    application_id: str = Field(default="", pattern=r"^$|^[0-9]{1,24}$")


class ChatConfig(_Model):
    """Commands from Slack and Discord (terry.chat): who is who, who may change things."""

    # chat identity -> Terry identity ("slack:T123/U456": alice, "discord:81234": bob).
    users: dict[_ChatId, _Identity] = Field(default_factory=dict)
    # Terry identities allowed to approve, reject, roll back and prevent (the rest read).
    writers: list[_Identity] = Field(default_factory=list)
    slack: SlackChatConfig = Field(default_factory=SlackChatConfig)
    discord: DiscordChatConfig = Field(default_factory=DiscordChatConfig)
    # The variable holding the key that signs confirmation buttons (unset: a random key
    # per process, so a server restart voids pending confirmations).
    confirm_secret_env: _EnvName = "TERRY_CHAT_SECRET"
    confirm_minutes: int = Field(default=10, ge=1, le=1440)


class ChaosConfig(_Model):
    """Chaos experiments (terry.chaos, docs/chaos.md): where they are and what they may touch."""

    # Experiment files (Chaos Toolkit JSON or YAML) in the GitOps repository.
    path: str = "experiments"
    # Environments a target may be drawn from; production only when listed here.
    environments: _Environments = Field(default_factory=lambda: ["staging", "development", "test"])
    # The most hosts one experiment may break at once (an experiment asks for 1 by default).
    max_blast_radius: int = Field(default=1, ge=1, le=100)
    # A run whose time to repair is above this notifies (event chaos-slow).
    mttr_threshold: Duration = 600.0
    # No host is a target while an SLO error budget of a service it serves (label
    # ``service``) has less than this percent left or cannot be read; 0 turns the rule off.
    min_budget_percent: float = Field(default=25.0, ge=0, le=100)


class Config(_Model):
    """What ``terry.yml`` may say. Paths are relative to the GitOps repository."""

    repo: Path = Path(".")
    main_branch: str = "main"
    inventory: list[str] = Field(default_factory=lambda: ["inventories/example"])
    roles_path: str = "roles"
    playbooks_path: str = "playbooks"
    database_url: str | None = None
    # Label names tried, in order, to find the host an alert is about.
    host_labels: list[str] = Field(default_factory=lambda: ["host", "instance", "nodename"])
    actor: str | None = None
    # Who may name someone else with --as on this machine (terry.access.act_as); empty:
    # nobody (the caller is TERRY_ACTOR, actor above, git's user.name, or the login).
    admins: list[str] = Field(default_factory=list)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    prometheus: PrometheusConfig = Field(default_factory=PrometheusConfig)
    forecast: ForecastConfig = Field(default_factory=ForecastConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    storm: StormConfig = Field(default_factory=StormConfig)
    canary: CanaryConfig = Field(default_factory=CanaryConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    forge: ForgeConfig = Field(default_factory=ForgeConfig)
    argocd: ArgoCDConfig = Field(default_factory=ArgoCDConfig)
    awx: AWXConfig = Field(default_factory=AWXConfig)
    schedules: list[ScheduleConfig] = Field(default_factory=list)
    inventory_rules: InventoryRules = Field(default_factory=InventoryRules)
    ai: AIConfig = Field(default_factory=AIConfig)
    reports: ReportsConfig = Field(default_factory=ReportsConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    chat: ChatConfig = Field(default_factory=ChatConfig)
    traces: TracesConfig = Field(default_factory=TracesConfig)
    cost: CostConfig = Field(default_factory=CostConfig)
    chaos: ChaosConfig = Field(default_factory=ChaosConfig)

    @model_validator(mode="after")
    def _unique_schedules(self) -> Config:
        names = [s.name for s in self.schedules]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"schedule names used twice: {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _issues_have_a_repository(self) -> Config:
        if self.forge.github.repository:
            return self
        for schedule in self.schedules:
            if any(d.github_issue is not None for d in schedule.deliver):
                raise ValueError(
                    f"schedule {schedule.name}: a github_issue delivery needs "
                    "forge.github.repository (owner/name) in terry.yml"
                )
        return self

    @model_validator(mode="after")
    def _canary_queries_have_prometheus(self) -> Config:
        if self.canary.queries and not self.prometheus.url:
            raise ValueError(
                "canary.queries need prometheus.url (or TERRY_PROMETHEUS_URL): without it "
                "they would never be asked, and the canary not watched by them"
            )
        return self

    def schedule(self, name: str) -> ScheduleConfig | None:
        return next((s for s in self.schedules if s.name == name), None)

    @property
    def state_dir(self) -> Path:
        """Terry's private working area inside the repository (git-ignored)."""
        return self.repo / ".terry"

    @property
    def secret_env_names(self) -> tuple[str, ...]:
        """Environment variables this configuration reads credentials from."""
        github = self.forge.github
        return (
            "TERRY_DATABASE_URL",
            self.server.token_env,
            self.server.read_tokens_env,
            github.token_env,
            github.app_id_env,
            github.private_key_env,
            github.installation_id_env,
            github.webhook_secret_env,
            self.argocd.token_env,
            self.awx.token_env,
            *(n for n in (self.prometheus.token_env, self.prometheus.password_env) if n),
            self.ai.api_key_env,
            *(d.webhook_url_env for s in self.schedules for d in s.deliver if d.webhook_url_env),
            *(r.url_env for r in self.notifications.routes if r.url_env),
            *(r.slack_app.token_env for r in self.notifications.routes if r.slack_app),
            self.chat.slack.signing_secret_env,
            self.chat.confirm_secret_env,
            # an OTLP backend's API key travels in these (terry.traces)
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        )

    @property
    def store_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.state_dir / 'terry.db').resolve()}"


def find_repo(start: Path) -> Path:
    """The nearest directory at or above ``start`` holding ``terry.yml``."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    raise ConfigError(f"no {CONFIG_FILE} in {start} or above; run 'terry init PATH' or pass --repo")


# The environment variables that set a key of terry.yml: (variable, the key's path).
_FROM_ENV: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("TERRY_DATABASE_URL", ("database_url",)),
    ("TERRY_INVENTORY", ("inventory",)),  # paths joined by os.pathsep
    ("TERRY_PROMETHEUS_URL", ("prometheus", "url")),
    ("TERRY_ARGOCD_URL", ("argocd", "url")),
    ("TERRY_AWX_URL", ("awx", "url")),
    ("TERRY_ACTOR", ("actor",)),
    ("TERRY_RUNNER_STRATEGY", ("runner", "strategy")),
)


def _env_overrides(environ: dict[str, str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, path in _FROM_ENV:
        if not (value := environ.get(name)):
            continue
        given: object = value
        if path == ("inventory",):
            given = [p for p in value.split(os.pathsep) if p]
        for key in reversed(path[1:]):
            given = {key: given}
        out = _merge(out, {path[0]: given})
    return out


def _set_by(
    environ: dict[str, str], overrides: dict[str, object], loc: tuple[object, ...]
) -> str | None:
    """The environment variable that set the key at ``loc`` (or the key holding it), if
    any: None when the key is terry.yml's, or a flag's (``overrides``) over both."""
    for name, path in _FROM_ENV:
        if environ.get(name) and tuple(str(p) for p in loc[: len(path)]) == path:
            flagged: object = overrides
            for key in path:
                flagged = flagged.get(key) if isinstance(flagged, dict) else None
            return name if flagged is None else None
    return None


def _merge(base: dict[str, object], over: dict[str, object]) -> dict[str, object]:
    merged = dict(base)
    for key, value in over.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            merged[key] = _merge(current, value)
        else:
            merged[key] = value
    return merged


def load_config(
    repo: Path,
    *,
    environ: dict[str, str] | None = None,
    overrides: dict[str, object] | None = None,
) -> Config:
    """Read ``terry.yml`` in ``repo`` and layer the environment and flags on top."""
    path = repo / CONFIG_FILE
    try:
        raw = yaml_unique.load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    if isinstance(raw.get("inventory"), str):
        raw["inventory"] = [raw["inventory"]]
    env = dict(os.environ if environ is None else environ)
    layered = _merge(raw, _env_overrides(env))
    layered = _merge(layered, overrides or {})
    layered["repo"] = repo.resolve()
    try:
        return Config.model_validate(layered)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        at = f"{where}: " if where else ""  # rules across sections have no one location
        said = first["msg"].removeprefix("Value error, ")  # pydantic's prefix to our words
        if (name := _set_by(env, overrides or {}, tuple(first["loc"]))) is not None:
            # the value came from the environment, not from terry.yml: name the variable
            raise ConfigError(f"{name} (sets {where} over {path}): {said}") from exc
        raise ConfigError(f"{path}: {at}{said}") from exc
