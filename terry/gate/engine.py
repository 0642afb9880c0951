"""The gate: Rego policies decide ``merge``, ``review`` or ``deny``, always with reasons.

Policies and their data are read from the main branch's tree (never from a proposal's
branch) and evaluated in-process by regorus — in a child process, because regorus holds the
GIL and cannot be interrupted: a child can be killed when it overruns the timeout.

Fail closed: an error, a timeout, an undefined or malformed answer means ``review``, never
``merge``, and the reason says so. Each decision records the policy commit it was made with.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "Decision",
    "OpaEngine",
    "PolicyEngine",
    "PolicySet",
    "RegorusEngine",
    "Verdict",
    "load_policy_set",
]


class Verdict(StrEnum):
    MERGE = "merge"
    REVIEW = "review"
    DENY = "deny"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reasons: tuple[str, ...]
    policy_commit: str | None

    @classmethod
    def fail_closed(cls, why: str, policy_commit: str | None) -> Decision:
        return cls(
            Verdict.REVIEW,
            (f"policy evaluation failed ({why}); failing closed to review",),
            policy_commit,
        )


@dataclass(frozen=True)
class PolicySet:
    """Rego modules and JSON data documents, by file name, plus the commit they came from."""

    modules: dict[str, str]
    data: tuple[dict[str, Any], ...]
    commit: str | None


def load_policy_set(directory: Path, commit: str | None) -> PolicySet:
    modules: dict[str, str] = {}
    data: list[dict[str, Any]] = []
    if directory.is_dir():
        for path in sorted(directory.rglob("*.rego")):
            if path.name.endswith("_test.rego"):
                continue
            modules[str(path.relative_to(directory))] = path.read_text(encoding="utf-8")
        for path in sorted(directory.rglob("*.json")):
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                document = None
            if isinstance(document, dict):
                data.append(document)
    return PolicySet(modules, tuple(data), commit)


class PolicyEngine(Protocol):
    def decide(self, policies: PolicySet, gate_input: dict[str, Any]) -> Decision: ...


def _interpret(answer: Any, commit: str | None) -> Decision:
    if not isinstance(answer, dict):
        return Decision.fail_closed("the policy returned nothing (undefined)", commit)
    raw_verdict = answer.get("decision")
    try:
        verdict = Verdict(raw_verdict)
    except ValueError:
        return Decision.fail_closed(f"unknown decision {raw_verdict!r}", commit)
    raw_reasons = answer.get("reasons") or []
    if isinstance(raw_reasons, str):
        raw_reasons = [raw_reasons]
    if not isinstance(raw_reasons, (list, tuple, set)):
        return Decision.fail_closed("reasons is not a list", commit)
    reasons = tuple(sorted(str(r) for r in raw_reasons))
    if not reasons:
        if verdict is Verdict.MERGE:
            return Decision.fail_closed("merge without a reason", commit)
        reasons = ("the policy gave no reason",)
    return Decision(verdict, reasons, commit)


class RegorusEngine:
    """In-process Rego (regorus), run in a killable child with a timeout."""

    def __init__(self, *, query: str = "data.terry.gate", timeout: float = 5.0) -> None:
        self.query = query
        self.timeout = timeout

    def decide(self, policies: PolicySet, gate_input: dict[str, Any]) -> Decision:
        if not policies.modules:
            return Decision.fail_closed("no .rego files in policies/", policies.commit)
        request = json.dumps(
            {
                "modules": policies.modules,
                "data": list(policies.data),
                "input": gate_input,
                "query": self.query,
            }
        )
        try:
            child = subprocess.run(
                [sys.executable, "-m", "terry.gate.child"],
                input=request,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Decision.fail_closed(f"timed out after {self.timeout:g}s", policies.commit)
        if child.returncode != 0:
            lines = (child.stderr or "").strip().splitlines()
            return Decision.fail_closed(
                lines[-1] if lines else "evaluator crashed", policies.commit
            )
        try:
            answer = json.loads(child.stdout)
        except json.JSONDecodeError:
            return Decision.fail_closed("evaluator printed no JSON", policies.commit)
        return _interpret(answer.get("result"), policies.commit)


class OpaEngine:
    """A remote OPA server (``POST /v1/data/<path>``) instead of regorus; same fail-closed rules.

    The server is expected to hold the same policies (for example via OPA bundles built from
    ``policies/``); ``policy_commit`` records the main-branch commit Terry believes it serves.
    """

    def __init__(self, url: str, *, query: str = "data.terry.gate", timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.path = query.removeprefix("data.").replace(".", "/")
        self.timeout = timeout

    def decide(self, policies: PolicySet, gate_input: dict[str, Any]) -> Decision:
        import httpx  # only OPA users pay for it

        try:
            response = httpx.post(
                f"{self.url}/v1/data/{self.path}", json={"input": gate_input}, timeout=self.timeout
            )
            response.raise_for_status()
            answer = response.json().get("result")
        except httpx.TimeoutException:
            return Decision.fail_closed(f"OPA timed out after {self.timeout:g}s", policies.commit)
        except (httpx.HTTPError, ValueError) as exc:
            return Decision.fail_closed(f"OPA error: {exc}", policies.commit)
        return _interpret(answer, policies.commit)
