"""Claude's answers are untrusted input: only a single propose_fix call that fits the schema,
the catalogue, the module allow-list and the incident's host is used; everything else is
refused with a reason, and what is accepted is AI-authored (risk at least medium)."""

from __future__ import annotations

from typing import Any

import pytest

from terry.ai.answer import AIAnswerError, AIPlaybook, AIRemedyChoice, parse_answer
from terry.ai.request import DiagnosisRequest
from terry.ai.rules import AnswerRules
from terry.inventory.hosts import Host, Inventory
from terry.remedies.catalogue import Catalogue, Risk, load_catalogue
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

WEB1 = Host("web-1", "10.0.0.11", "production", "shop", {"role": "web"}, ("web", "production"))
WEB2 = Host("web-2", "10.0.0.12", "production", "shop", {"role": "web"}, ("web", "production"))
DB1 = Host("db-1", "10.0.0.21", "production", "shop", {"role": "db"}, ("db", "production"))
SHOP = Host(
    "shop",
    None,
    "production",
    "shop",
    {},
    ("apps",),
    variables={"terry_applier": "argocd", "terry_argocd_app": "shop", "terry_manifest": "m.yml"},
)
INVENTORY = Inventory({h.name: h for h in (WEB1, WEB2, DB1, SHOP)})
RULES = AnswerRules()


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(REPO_ROOT / "roles")


def _request(catalogue: Catalogue, host: Host = WEB1) -> DiagnosisRequest:
    return DiagnosisRequest.build(
        alertname="NginxErrors",
        labels={"host": host.name, "service": "nginx"},
        annotations={"summary": "nginx answers 502"},
        host=host,
        inventory=INVENTORY,
        catalogue=catalogue,
    )


def _message(
    tool_input: Any,
    *,
    name: str = "propose_fix",
    stop: str = "tool_use",
    before: tuple[dict[str, Any], ...] = ({"type": "text", "text": "Let me look."},),
) -> dict[str, Any]:
    call = {"type": "tool_use", "id": "toolu_1", "name": name, "input": tool_input}
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [*before, call],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 10},
    }


def _task(module: str, title: str = "a step", **args: Any) -> dict[str, Any]:
    return {"name": title, "module": module, "args": args}


def _playbook(*tasks: dict[str, Any], rollback: list[dict[str, Any]] | None = None) -> dict:
    undo = rollback or [_task("ansible.builtin.service", name="nginx", state="started")]
    return {
        "diagnosis": "nginx lost its upstream after a config change",
        "confidence": 75,
        "rollback": "restore the previous line and restart nginx",
        "fix": {"kind": "playbook", "tasks": list(tasks), "rollback_tasks": undo},
    }


def _remedy(name: str, params: dict[str, Any], confidence: int = 80) -> dict[str, Any]:
    return {
        "diagnosis": "the service is down",
        "confidence": confidence,
        "rollback": "the remedy's own rollback",
        "fix": {"kind": "remedy", "remedy": name, "params": params},
    }


def _refused(catalogue: Catalogue, tool_input: Any, *, rules: AnswerRules = RULES, **kw) -> str:
    with pytest.raises(AIAnswerError) as caught:
        parse_answer(_message(tool_input, **kw), _request(catalogue), rules)
    return str(caught.value)


RESTART = _task("ansible.builtin.service", name="nginx", state="restarted")


# -- good answers ----------------------------------------------------------------------------
def test_a_remedy_choice_is_checked_with_the_catalogue_types_and_raised_to_medium(
    catalogue: Catalogue,
) -> None:
    answer = parse_answer(
        _message(_remedy("service-down", {"service": "nginx"})), _request(catalogue), RULES
    )
    assert answer.fix == AIRemedyChoice("service-down", {"service": "nginx"})
    assert catalogue.get("service-down").risk == Risk.LOW  # type: ignore[union-attr]
    assert answer.risk == Risk.MEDIUM and answer.ai_authored and answer.min_risk == Risk.MEDIUM
    assert answer.held is None and answer.confidence == 80
    assert (answer.model, answer.message_id) == ("claude-test", "msg_1")


def test_remedy_parameters_not_given_take_their_defaults(catalogue: Catalogue) -> None:
    answer = parse_answer(
        _message(_remedy("disk-usage-high", {"path": "/var/log/../log/app"})),
        _request(catalogue),
        RULES,
    )
    assert answer.fix == AIRemedyChoice(
        "disk-usage-high",
        {
            "path": "/var/log/app",
            "threshold": 80,
            "max_age_days": 7,
            "log_retention_days": 14,
            "core_retention_days": 3,
            "package_caches": "remove",
            "reason": "",
        },
    )


def test_a_composed_playbook_within_the_allow_list_is_accepted(catalogue: Catalogue) -> None:
    tool_input = _playbook(
        _task(
            "ansible.builtin.lineinfile",
            path="/srv/nginx/upstream.conf",
            regexp="^server ",
            line="server 127.0.0.1:8080;",
        ),
        _task("ansible.builtin.file", path="/srv/nginx/cache", state="directory", mode="750"),
        _task("ansible.builtin.copy", dest="/srv/nginx/NOTE", content="fixed by terry\n\tok\n"),
        _task("ansible.builtin.systemd", name="nginx", state="restarted", enabled=True),
        rollback=[_task("ansible.builtin.file", path="/srv/nginx/cache", state="absent")],
    )
    answer = parse_answer(_message(tool_input), _request(catalogue), RULES)
    assert isinstance(answer.fix, AIPlaybook)
    assert [t.module for t in answer.fix.tasks] == [
        "ansible.builtin.lineinfile",
        "ansible.builtin.file",
        "ansible.builtin.copy",
        "ansible.builtin.systemd_service",  # Ansible's redirect, normalised
    ]
    assert answer.fix.tasks[1].args["mode"] == "0750"
    assert answer.fix.modules == (
        "ansible.builtin.copy",
        "ansible.builtin.file",
        "ansible.builtin.lineinfile",
        "ansible.builtin.systemd_service",
    )
    assert answer.risk == Risk.MEDIUM and answer.held is None


def test_the_incidents_own_host_may_be_named(catalogue: Catalogue) -> None:
    line = _task("ansible.builtin.lineinfile", path="/srv/a.conf", line="server_name web-1;")
    answer = parse_answer(_message(_playbook(line)), _request(catalogue), RULES)
    assert isinstance(answer.fix, AIPlaybook)


def test_below_min_confidence_a_valid_answer_is_held_for_a_human(catalogue: Catalogue) -> None:
    answer = parse_answer(
        _message(_remedy("service-down", {"service": "nginx"}, confidence=40)),
        _request(catalogue),
        RULES,
    )
    assert answer.held == "confidence 40 is below ai.min_confidence 60"


def test_shell_is_accepted_only_when_policy_allows_it_and_is_then_high_risk(
    catalogue: Catalogue,
) -> None:
    rules = AnswerRules(
        allowed_modules=("ansible.builtin.service", "ansible.builtin.command"), allow_shell=True
    )
    tool_input = _playbook(_task("ansible.builtin.command", cmd="nginx -t"), RESTART)
    answer = parse_answer(_message(tool_input), _request(catalogue), rules)
    assert answer.risk == Risk.HIGH


# -- hostile answers -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "tool_input",
    [
        _playbook(_task("ansible.builtin.service", name="web; rm -rf /", state="restarted")),
        _remedy("service-down", {"service": "web; rm -rf /"}),
        _remedy("service-down", {"service": "$(reboot)"}),
    ],
)
def test_shell_injection_in_a_name_is_refused(catalogue: Catalogue, tool_input: Any) -> None:
    assert "rm -rf" in _refused(catalogue, tool_input) or "reboot" in _refused(
        catalogue, tool_input
    )


@pytest.mark.parametrize(
    ("module", "why"),
    [
        ("ansible.builtin.shell", "runs raw shell; refused (ai.allow_shell)"),
        ("ansible.builtin.command", "runs raw shell; refused (ai.allow_shell)"),
        ("ansible.builtin.raw", "never accepted"),
        ("ansible.builtin.script", "never accepted"),
        ("community.general.nmcli", "not an allowed module"),
        ("ansible.builtin.uri", "not an allowed module"),
        ("shell", "not fully qualified (e.g. ansible.builtin.shell)"),
        ("service", "not fully qualified"),
        ("ansible.legacy.service", "may name a local module"),
        ("ansible.builtin.service; rm -rf /", "not a module name"),
    ],
)
def test_modules_outside_the_allow_list_are_refused(
    catalogue: Catalogue, module: str, why: str
) -> None:
    reason = _refused(catalogue, _playbook(_task(module, cmd="rm -rf /")))
    assert why in reason and "tasks[0].module" in reason


def test_raw_is_refused_even_when_shell_is_allowed(catalogue: Catalogue) -> None:
    rules = AnswerRules(allowed_modules=("ansible.builtin.shell",), allow_shell=True)
    reason = _refused(catalogue, _playbook(_task("ansible.builtin.raw", cmd="id")), rules=rules)
    assert "never accepted" in reason


def test_a_shell_module_in_the_rollback_is_refused_too(catalogue: Catalogue) -> None:
    tool_input = _playbook(RESTART, rollback=[_task("ansible.builtin.shell", cmd="id")])
    assert "rollback_tasks[0].module" in _refused(catalogue, tool_input)


@pytest.mark.parametrize(
    ("task", "named"),
    [
        (
            _task("ansible.builtin.lineinfile", path="/srv/a.conf", line="upstream web-2:8080;"),
            "web-2",
        ),
        (
            _task("ansible.builtin.copy", dest="/srv/a.conf", content="db = 10.0.0.21\n"),
            "10.0.0.21",
        ),
        (_task("ansible.builtin.lineinfile", path="/srv/a", line="host=db-1.example.com"), "db-1"),
        (_task("ansible.builtin.service", name="db-1", state="restarted"), "db-1"),
        (
            _task("ansible.builtin.service", name="nginx", state="started") | {"name": "on web-2"},
            "web-2",
        ),
    ],
)
def test_a_task_naming_another_inventory_host_is_refused(
    catalogue: Catalogue, task: dict[str, Any], named: str
) -> None:
    reason = _refused(catalogue, _playbook(task))
    assert reason.endswith(f"names a host outside the incident: {named}")


def test_a_remedy_parameter_naming_another_host_is_refused(catalogue: Catalogue) -> None:
    reason = _refused(catalogue, _remedy("service-down", {"service": "web-2"}))
    assert "params.service names a host outside the incident: web-2" in reason


@pytest.mark.parametrize(
    "keyword", ["delegate_to", "hosts", "run_once", "local_action", "with_items", "become"]
)
def test_task_keywords_beyond_name_module_args_are_refused(
    catalogue: Catalogue, keyword: str
) -> None:
    task = RESTART | {keyword: "db-1"}
    reason = _refused(catalogue, _playbook(task))
    assert f"tasks[0]: '{keyword}' is refused: a task is only name, module and args" in reason


@pytest.mark.parametrize(
    ("tool_input", "where"),
    [
        (
            _playbook(
                _task(
                    "ansible.builtin.lineinfile",
                    path="/srv/a",
                    line="{{ lookup('pipe', 'id') }}",
                )
            ),
            "input.fix.tasks[0].args.line",
        ),
        (_playbook(_task("ansible.builtin.service", name="{% raw %}x", state="started")), "name"),
        (_remedy("service-down", {"service": "{# x #}"}), "input.fix.params.service"),
        (_remedy("service-down", {"service": "nginx"}) | {"diagnosis": "{{ 7*7 }}"}, "diagnosis"),
    ],
)
def test_jinja2_anywhere_is_refused(catalogue: Catalogue, tool_input: Any, where: str) -> None:
    reason = _refused(catalogue, tool_input)
    assert "holds a Jinja2 expression" in reason and where in reason


_GOOD = _remedy("service-down", {"service": "nginx"})


@pytest.mark.parametrize(
    ("tool_input", "why"),
    [
        ('{"diagnosis": "x", "confidence": 9', "input is not a JSON object"),
        (["not", "an", "object"], "input is not a JSON object"),
        (_GOOD | {"confidence": "high"}, "input.confidence: expected integer, got string"),
        (_GOOD | {"confidence": True}, "input.confidence: expected integer, got boolean"),
        (_GOOD | {"confidence": 75.5}, "input.confidence: expected integer, got number"),
        (_GOOD | {"confidence": 101}, "input.confidence: 101 is above the maximum 100"),
        (_GOOD | {"confidence": -1}, "input.confidence: -1 is below the minimum 0"),
        ({k: v for k, v in _GOOD.items() if k != "diagnosis"}, "diagnosis is required"),
        ({k: v for k, v in _GOOD.items() if k != "rollback"}, "rollback is required"),
        (_GOOD | {"diagnosis": ""}, "input.diagnosis: must not be empty"),
        (_GOOD | {"diagnosis": "x" * 2001}, "input.diagnosis: longer than 2000 characters"),
        (_GOOD | {"run_after": "rm -rf /"}, "unexpected key 'run_after'"),
        (_GOOD | {"fix": "restart it"}, "input.fix"),
        (_GOOD | {"fix": {"kind": "script"}}, "input.fix.kind: 'script' is not one of remedy"),
        (_remedy("reboot-everything", {}), "remedy 'reboot-everything' is not in the catalogue"),
        (_remedy("service-down", {"service": "nginx", "force": 1}), "unexpected key 'force'"),
        (_remedy("service-down", {}), "input.fix.params: service is required"),
        (_remedy("disk-usage-high", {"threshold": "80"}), "threshold: expected integer"),
        (_remedy("disk-usage-high", {"threshold": 100}), "100 is above the maximum 99"),
        (_remedy("disk-usage-high", {"path": "/etc"}), "outside the allowed roots"),
        (
            _remedy("deployment-scale-up", {"replicas": 3}),
            "remedy deployment-scale-up is applied by argocd, but host web-1 is applied by ansible",
        ),
    ],
)
def test_malformed_or_wrongly_typed_answers_are_refused(
    catalogue: Catalogue, tool_input: Any, why: str
) -> None:
    assert why in _refused(catalogue, tool_input)


@pytest.mark.parametrize(
    ("tool_input", "why"),
    [
        (
            _playbook(RESTART) | {"fix": {"kind": "playbook", "tasks": [RESTART]}},
            "rollback_tasks is required",
        ),
        (_playbook(), "input.fix.tasks: needs at least 1 item(s)"),
        (
            _playbook(RESTART | {"args": {"name": "nginx", "state": "restarted", "force": True}}),
            "unexpected key 'force'",
        ),
        (_playbook(_task("ansible.builtin.service", name="nginx")), "give state or enabled"),
        (
            _playbook(_task("ansible.builtin.service", name="nginx", state="killed")),
            "'killed' is not one of started",
        ),
        (
            _playbook(_task("ansible.builtin.file", path="/etc/shadow", state="absent")),
            "outside the allowed roots",
        ),
        (
            _playbook(_task("ansible.builtin.file", path="/srv/../etc", state="absent")),
            "outside the allowed roots",
        ),
        (
            _playbook(_task("ansible.builtin.file", path="/srv", state="absent")),
            "removing an allowed root",
        ),
        (_playbook(_task("ansible.builtin.file", path="/srv/x", mode="0777")), "world-writable"),
        (_playbook(_task("ansible.builtin.file", path="/srv/x", mode="4755")), "args.mode"),
        (
            _playbook(_task("ansible.builtin.lineinfile", path="/srv/x", regexp="(", line="a")),
            "not a valid regular expression",
        ),
        (
            _playbook(_task("ansible.builtin.lineinfile", path="/srv/x", line="a\nb")),
            "control characters",
        ),
        (
            _playbook(_task("ansible.builtin.lineinfile", path="/srv/x", state="absent")),
            "needs regexp or line",
        ),
        (_playbook(_task("ansible.builtin.copy", dest="/srv/x")), "content is required"),
        (_playbook(*[RESTART] * 11), "input.fix.tasks: at most 10 items"),
        (_playbook(RESTART | {"name": ""}), "input.fix.tasks[0].name: must not be empty"),
    ],
)
def test_composed_tasks_must_fit_their_module_schema(
    catalogue: Catalogue, tool_input: dict[str, Any], why: str
) -> None:
    assert why in _refused(catalogue, tool_input)


def test_paths_follow_the_hosts_own_allowed_roots(catalogue: Catalogue) -> None:
    host = Host(
        "web-3", None, "staging", "shop", {}, (), variables={"terry_ai_paths": ["/etc/nginx"]}
    )
    request = DiagnosisRequest.build(
        alertname="NginxErrors",
        labels={},
        annotations={},
        host=host,
        inventory=Inventory({"web-3": host, **INVENTORY.hosts}),
        catalogue=catalogue,
    )
    inside = _playbook(_task("ansible.builtin.lineinfile", path="/etc/nginx/a.conf", line="x"))
    assert isinstance(parse_answer(_message(inside), request, RULES).fix, AIPlaybook)
    outside = _playbook(_task("ansible.builtin.lineinfile", path="/srv/a.conf", line="x"))
    with pytest.raises(AIAnswerError, match="outside the allowed roots /etc/nginx"):
        parse_answer(_message(outside), request, RULES)


def test_an_argocd_target_gets_catalogue_remedies_only(catalogue: Catalogue) -> None:
    request = _request(catalogue, SHOP)
    scale = _remedy("deployment-scale-up", {"replicas": 4})
    assert parse_answer(_message(scale), request, RULES).fix == AIRemedyChoice(
        "deployment-scale-up", {"replicas": 4}
    )
    with pytest.raises(AIAnswerError, match="applied by argocd: only catalogue remedies"):
        parse_answer(_message(_playbook(RESTART)), request, RULES)


def test_with_no_allowed_modules_only_remedies_are_accepted(catalogue: Catalogue) -> None:
    rules = AnswerRules(allowed_modules=())
    assert "composed playbooks are off" in _refused(catalogue, _playbook(RESTART), rules=rules)


# -- the envelope ----------------------------------------------------------------------------
def test_a_text_only_answer_is_refused(catalogue: Catalogue) -> None:
    message = _message(_GOOD, stop="end_turn")
    message["content"] = [{"type": "text", "text": "Just run rm -rf /tmp/* on web-2."}]
    with pytest.raises(AIAnswerError, match="did not call propose_fix"):
        parse_answer(message, _request(catalogue), RULES)


def test_a_call_to_another_tool_is_refused(catalogue: Catalogue) -> None:
    assert "called tool 'run_shell', not propose_fix" in _refused(
        catalogue, _GOOD, name="run_shell"
    )


def test_two_tool_calls_are_refused(catalogue: Catalogue) -> None:
    second = {"type": "tool_use", "id": "toolu_2", "name": "propose_fix", "input": _GOOD}
    reason = _refused(catalogue, _GOOD, before=(second,))
    assert "2 tool calls; exactly one is accepted" in reason


@pytest.mark.parametrize(
    ("stop", "why"),
    [
        ("max_tokens", "cut off at max_tokens"),
        ("refusal", "declined"),
        ("end_turn", "stop_reason is 'end_turn', not tool_use"),
    ],
)
def test_the_stop_reason_must_be_tool_use(catalogue: Catalogue, stop: str, why: str) -> None:
    assert why in _refused(catalogue, _GOOD, stop=stop)


def test_control_characters_in_the_diagnosis_are_folded(catalogue: Catalogue) -> None:
    tool_input = _GOOD | {"diagnosis": "down\x1b[2J since 10:00\nsee logs"}
    answer = parse_answer(_message(tool_input), _request(catalogue), RULES)
    assert answer.diagnosis == "down [2J since 10:00\nsee logs"
