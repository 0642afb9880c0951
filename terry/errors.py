"""Terry's one exception tree.

Library code raises these; only ``terry.cli`` turns them into messages and exit codes.
Third-party errors are translated at the boundary where they enter.
"""

from __future__ import annotations

__all__ = [
    "BranchTaken",
    "ConfigError",
    "ForgeError",
    "GitError",
    "InputError",
    "MergeConflict",
    "NotFound",
    "PermissionDenied",
    "PolicyError",
    "RunGoesOn",
    "RunnerError",
    "StateError",
    "StoreError",
    "TerryError",
    "Unreachable",
]


class TerryError(Exception):
    """Base of every error Terry raises on purpose. ``exit_code`` is what the CLI returns;
    ``http_status`` what the API and the console answer when an action is refused with it
    (409: the proposal's state does not allow it, unless a class says otherwise)."""

    exit_code = 1
    http_status = 409


class InputError(TerryError):
    """Bad input from outside (a payload, a flag, a label value)."""

    exit_code = 2
    http_status = 400


class ConfigError(TerryError):
    """terry.yml, the inventory or the catalogue is unusable."""

    exit_code = 3


class NotFound(TerryError):
    """An incident, proposal, host or remedy that does not exist."""

    exit_code = 4
    http_status = 404


class StateError(TerryError):
    """An action the current state does not allow (approving twice, applying a denial)."""

    exit_code = 5


class StoreError(TerryError):
    """The store cannot be reached or refused a write."""

    exit_code = 6
    http_status = 503


class GitError(TerryError):
    """A git operation on the GitOps repository failed."""

    exit_code = 7


class BranchTaken(GitError):
    """A new branch's name was taken between choosing it and creating it (another proposal
    made at the same moment won it): choose the next free name."""


class MergeConflict(GitError):
    """A branch cannot be merged into main as main now is: main changed the same lines of
    ``paths`` since the branch was made. Trying again changes nothing."""

    def __init__(self, message: str, paths: tuple[str, ...]) -> None:
        super().__init__(message)
        self.paths = paths


class RunnerError(TerryError):
    """ansible-runner could not start (not: the playbook failed, which is an outcome).
    ``setting``: the terry.yml key that stopped it (``awx.url``), when it was a setting, so
    whoever reports it can say where the fix goes."""

    exit_code = 8

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class RunGoesOn(RunnerError):
    """A run Terry stopped watching before it was seen to end, which may still change its
    hosts: a job AWX was asked to cancel that did not show an end, or that could not be
    seen at all. Its record stays ``running`` at ``remote`` and its hosts stay held, handed
    over to recovery (``terry.store.runs.detach``), which frees them only once the
    applier's ``stop_remote`` sees the run ended. ``events``: the run's events seen so far
    (``RunnerEvent``s), kept with its record."""

    def __init__(self, message: str, *, remote: str, events: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.remote = remote
        self.events = events


class PolicyError(TerryError):
    """Policies could not be loaded. Evaluation errors fail closed instead of raising."""

    exit_code = 9


class ForgeError(TerryError):
    """The forge (GitHub) refused or could not be reached; the proposal waits, nothing is
    lost, and the next sync tries again."""

    exit_code = 10


class PermissionDenied(TerryError):
    """The caller may not do this: ``terry serve`` refused the token (401) or its role
    (403, with the reason), or ``--as`` names someone else and the caller is no admin."""

    exit_code = 11
    http_status = 403


class Unreachable(TerryError):
    """``terry serve`` (``TERRY_SERVER``) could not be reached, or did not answer as Terry's
    API does."""

    exit_code = 12
