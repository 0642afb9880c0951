"""Claude's answer, treated as untrusted input: parsed, validated, or refused with a reason.

An answer is usable only when all of these hold, checked in this order:

1. the message ends with ``stop_reason: tool_use`` and holds exactly one ``tool_use`` block,
   calling ``propose_fix`` with a JSON object;
2. no string anywhere holds Jinja2 (``{{``, ``{%``, ``{#``): answers are plain data;
3. a remedy is one of the catalogue's, run by the host's applier; a composed playbook's
   tasks are ``name``, ``module`` and ``args`` only (no ``delegate_to``, ``hosts``,
   ``run_once``, ``local_action``, loops or conditions) and use fully-qualified modules in
   ``ai.allowed_modules``; raw shell only with ``ai.allow_shell``;
4. the input fits the tool's JSON Schema (``terry.ai.request.tool_schema``): types,
   required keys, no extra keys, lengths, bounds;
5. remedy parameters pass the catalogue's own checks (``ParamSpec.check``); module
   arguments pass theirs (``terry.ai.modules``), paths under the host's allowed roots;
6. nothing names another inventory host.

A valid answer is still AI-authored: its risk is at least medium (review), and below
``ai.min_confidence`` it is ``held`` for a human.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from terry.ai.errors import AIAnswerError
from terry.ai.modules import MODULES, NEVER_MODULES, SHELL_MODULES, ArgKind, canonical_module
from terry.ai.request import TOOL_NAME, DiagnosisRequest, tool_schema
from terry.ai.rules import AnswerRules
from terry.ai.schema import SchemaError, check, show
from terry.remedies.catalogue import Remedy, Risk
from terry.remedies.params import ParamError, ParamType

__all__ = [
    "MIN_RISK",
    "AIAnswer",
    "AIAnswerError",
    "AIPlaybook",
    "AIRemedyChoice",
    "AITask",
    "parse_answer",
    "tool_call_input",
]

MIN_RISK = Risk.MEDIUM

_JINJA = ("{{", "{%", "{#")
# Ansible task keywords: a task here is (name, module, args) and nothing else.
_TASK_KEYWORDS = frozenset(
    {
        "action",
        "any_errors_fatal",
        "become",
        "become_method",
        "become_user",
        "block",
        "changed_when",
        "check_mode",
        "collections",
        "connection",
        "delegate_facts",
        "delegate_to",
        "diff",
        "environment",
        "failed_when",
        "hosts",
        "ignore_errors",
        "import_role",
        "import_tasks",
        "include_role",
        "include_tasks",
        "local_action",
        "loop",
        "loop_control",
        "module_defaults",
        "no_log",
        "notify",
        "port",
        "register",
        "remote_user",
        "run_once",
        "serial",
        "tags",
        "throttle",
        "until",
        "vars",
        "when",
    }
)
_TOKEN = re.compile(r"[A-Za-z0-9_.-]+")
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # shown to people: keep \t and \n


@dataclass(frozen=True)
class AIRemedyChoice:
    """A catalogue remedy with checked parameter values; its own rollback applies."""

    remedy: str
    params: dict[str, Any]


@dataclass(frozen=True)
class AITask:
    name: str
    module: str  # fully qualified, in ai.allowed_modules
    args: dict[str, Any]  # checked against the module's argument schema


@dataclass(frozen=True)
class AIPlaybook:
    """Tasks composed by Claude for the incident's host only, and the tasks that undo them."""

    tasks: tuple[AITask, ...]
    rollback_tasks: tuple[AITask, ...]

    @property
    def modules(self) -> tuple[str, ...]:
        """Every module the fix and its rollback use, for the gate's allow-list."""
        return tuple(sorted({t.module for t in (*self.tasks, *self.rollback_tasks)}))


@dataclass(frozen=True)
class AIAnswer:
    fix: AIRemedyChoice | AIPlaybook
    diagnosis: str
    confidence: int  # 0..100
    rollback: str  # how the fix is undone, in words
    risk: Risk  # never below MIN_RISK
    # Why a valid answer is still kept for a human (e.g. confidence below the minimum).
    held: str | None = None
    model: str = ""
    message_id: str = ""

    ai_authored: ClassVar[bool] = True
    min_risk: ClassVar[Risk] = MIN_RISK


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield f"{where}.{str(key)[:40]}", str(key)
            yield from _strings(item, f"{where}.{str(key)[:40]}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]")


def tool_call_input(message: Mapping[str, Any], name: str = TOOL_NAME) -> dict[str, Any]:
    """The input of the one call to tool ``name`` that ends the message, or AIAnswerError."""
    content = message.get("content")
    if not isinstance(content, list):
        raise AIAnswerError("the answer has no content list")
    calls = [b for b in content if isinstance(b, Mapping) and b.get("type") == "tool_use"]
    stop = message.get("stop_reason")
    if stop == "max_tokens":
        raise AIAnswerError("the answer was cut off at max_tokens (raise ai.max_tokens)")
    if stop == "refusal":
        raise AIAnswerError("Claude declined to answer (stop_reason refusal)")
    if not calls:
        raise AIAnswerError(f"the answer did not call {name} (text only)")
    if len(calls) > 1:
        raise AIAnswerError(f"the answer made {len(calls)} tool calls; exactly one is accepted")
    if stop != "tool_use":
        raise AIAnswerError(f"stop_reason is {show(stop)}, not tool_use")
    call = calls[0]
    if call.get("name") != name:
        raise AIAnswerError(f"the answer called tool {show(call.get('name'))}, not {name}")
    tool_input = call.get("input")
    if not isinstance(tool_input, dict):
        raise AIAnswerError(f"the {name} input is not a JSON object: {show(tool_input)}")
    return copy.deepcopy(tool_input)


def _no_templates(tool_input: dict[str, Any]) -> None:
    for where, text in _strings(tool_input, "input"):
        if any(marker in text for marker in _JINJA):
            raise AIAnswerError(
                f"{where} holds a Jinja2 expression ({show(text, 40)}); answers are plain data"
            )


def _remedy(request: DiagnosisRequest, fix: dict[str, Any]) -> None:
    name = fix.get("remedy")
    if not isinstance(name, str):
        return  # the schema check says what is wrong
    remedy = request.catalogue.get(name)
    if remedy is None:
        raise AIAnswerError(f"remedy {show(name)} is not in the catalogue")
    if remedy.applier != request.host.applier:
        raise AIAnswerError(
            f"remedy {remedy.name} is applied by {remedy.applier}, but host "
            f"{request.host.name} is applied by {request.host.applier}"
        )


def _task_shape(task: dict[str, Any], where: str, rules: AnswerRules) -> None:
    for key in task:
        if key in _TASK_KEYWORDS or str(key).startswith("with_"):
            raise AIAnswerError(
                f"{where}: {show(key)} is refused: a task is only name, module and args "
                "(no delegation, other hosts, loops, conditions or privilege changes)"
            )
    module = task.get("module")
    if not isinstance(module, str):
        return
    try:
        name = canonical_module(module)
    except ValueError as exc:
        raise AIAnswerError(f"{where}.module: {exc}") from exc
    if name in NEVER_MODULES:
        raise AIAnswerError(f"{where}.module: {name} is never accepted")
    if name in SHELL_MODULES and not rules.allow_shell:
        raise AIAnswerError(f"{where}.module: {name} runs raw shell; refused (ai.allow_shell)")
    if name not in rules.allowed_modules:
        allowed = ", ".join(rules.allowed_modules) or "none"
        raise AIAnswerError(
            f"{where}.module: {name[:80]} is not an allowed module (ai.allowed_modules: {allowed})"
        )
    task["module"] = name


def _playbook(request: DiagnosisRequest, fix: dict[str, Any], rules: AnswerRules) -> None:
    if request.host.applier != "ansible":
        raise AIAnswerError(
            f"host {request.host.name} is applied by {request.host.applier}: only catalogue "
            "remedies can be proposed for it"
        )
    if not rules.allowed_modules:
        raise AIAnswerError("composed playbooks are off (ai.allowed_modules is empty)")
    for key in ("tasks", "rollback_tasks"):
        tasks = fix.get(key)
        if isinstance(tasks, list):
            for index, task in enumerate(tasks):
                if isinstance(task, dict):
                    _task_shape(task, f"input.fix.{key}[{index}]", rules)


def _rules_first(request: DiagnosisRequest, tool_input: dict[str, Any], rules: AnswerRules) -> None:
    """The checks whose reasons matter more than the schema's (named modules, keywords)."""
    fix = tool_input.get("fix")
    if not isinstance(fix, dict):
        return
    if fix.get("kind") == "remedy":
        _remedy(request, fix)
    elif fix.get("kind") == "playbook":
        _playbook(request, fix, rules)


def _params(remedy: Remedy, given: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for spec in remedy.params:
        if spec.name in given:
            raw = given[spec.name]
        elif spec.default is not None:
            raw = spec.default
        else:  # the schema requires every parameter without a default
            raise AIAnswerError(f"remedy {remedy.name}: parameter {spec.name!r} is required")
        try:
            values[spec.name] = spec.check(raw)
        except ParamError as exc:
            raise AIAnswerError(f"remedy {remedy.name}: parameter {spec.name!r}: {exc}") from exc
    return values


def _tasks(raw: list[dict[str, Any]], key: str, roots: tuple[str, ...]) -> tuple[AITask, ...]:
    tasks = []
    for index, task in enumerate(raw):
        module = MODULES[task["module"]]
        try:
            args = module.check(task["args"], roots)
        except ParamError as exc:
            raise AIAnswerError(f"input.fix.{key}[{index}] ({module.name}): {exc}") from exc
        if re.search(r"[\x00-\x1f\x7f]", task["name"]):
            raise AIAnswerError(f"input.fix.{key}[{index}].name holds control characters")
        tasks.append(AITask(name=task["name"], module=module.name, args=args))
    return tuple(tasks)


def _other_host(text: str, others: frozenset[str], *, whole: bool) -> str | None:
    """The other inventory host ``text`` names: equal to it, or (unless ``whole``) as a word
    in it, a host name also as the first label of a dotted name (``db-1.example.com``)."""
    if text in others:
        return text
    if whole:
        return None
    for token in _TOKEN.findall(text):
        token = token.strip(".")
        for candidate in (token, token.split(".", 1)[0]):
            if candidate in others:
                return candidate
    return next((o for o in others if ":" in o and o in text), None)


def _check_hosts(fix: AIRemedyChoice | AIPlaybook, request: DiagnosisRequest) -> None:
    others = request.other_hosts
    checks: list[tuple[str, Any, bool]] = []
    if isinstance(fix, AIRemedyChoice):
        remedy = request.catalogue.get(fix.remedy)
        kinds = {p.name: p.type for p in remedy.params} if remedy else {}
        for name, value in fix.params.items():
            checks.append((f"input.fix.params.{name}", value, kinds.get(name) == ParamType.PATH))
    else:
        for key, tasks in (("tasks", fix.tasks), ("rollback_tasks", fix.rollback_tasks)):
            for index, task in enumerate(tasks):
                checks.append((f"input.fix.{key}[{index}].name", task.name, False))
                specs = dict(MODULES[task.module].args)
                for arg, value in task.args.items():
                    whole = specs[arg].kind == ArgKind.PATH
                    checks.append((f"input.fix.{key}[{index}].args.{arg}", value, whole))
    for where, value, whole in checks:
        if isinstance(value, str) and (named := _other_host(value, others, whole=whole)):
            raise AIAnswerError(f"{where} names a host outside the incident: {named}")


def _risk(fix: AIRemedyChoice | AIPlaybook, request: DiagnosisRequest) -> Risk:
    if isinstance(fix, AIPlaybook):
        shell = any(m in SHELL_MODULES for m in fix.modules)
        return Risk.HIGH if shell else MIN_RISK
    remedy = request.catalogue.get(fix.remedy)
    base = remedy.risk if remedy else Risk.HIGH
    return base if base.rank >= MIN_RISK.rank else MIN_RISK


def parse_answer(
    message: Mapping[str, Any], request: DiagnosisRequest, rules: AnswerRules
) -> AIAnswer:
    """The validated answer in a Messages API response (as JSON), or AIAnswerError."""
    tool_input = tool_call_input(message)
    _no_templates(tool_input)
    _rules_first(request, tool_input, rules)
    try:
        check(tool_input, tool_schema(request, rules))
    except SchemaError as exc:
        raise AIAnswerError(f"the answer does not fit the schema: {exc}") from exc
    raw_fix = tool_input["fix"]
    fix: AIRemedyChoice | AIPlaybook
    if raw_fix["kind"] == "remedy":
        remedy = request.catalogue.get(raw_fix["remedy"])
        assert remedy is not None  # the schema allows catalogue names only
        fix = AIRemedyChoice(remedy.name, _params(remedy, raw_fix["params"]))
    else:
        roots = rules.roots(request.host.paths)
        fix = AIPlaybook(
            tasks=_tasks(raw_fix["tasks"], "tasks", roots),
            rollback_tasks=_tasks(raw_fix["rollback_tasks"], "rollback_tasks", roots),
        )
    _check_hosts(fix, request)
    confidence = tool_input["confidence"]
    held = None
    if confidence < rules.min_confidence:
        held = f"confidence {confidence} is below ai.min_confidence {rules.min_confidence}"
    return AIAnswer(
        fix=fix,
        diagnosis=_TEXT_CONTROL.sub(" ", tool_input["diagnosis"]),
        confidence=confidence,
        rollback=_TEXT_CONTROL.sub(" ", tool_input["rollback"]),
        risk=_risk(fix, request),
        held=held,
        model=str(message.get("model") or "")[:128],
        message_id=str(message.get("id") or "")[:128],
    )
