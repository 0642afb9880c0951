"""A playbook Claude composed, rendered the way remedies are: plays built as Python data by
Terry, every value from the answer in a separate vars file tagged ``!unsafe``.

The answer only chooses module names (from ``ai.allowed_modules``), argument names (from
each module's argument schema) and values; the playbook text refers to the values by
variable name, so nothing Claude wrote is ever Jinja2 source. Three plays, like a remedy's:

- apply (tag ``apply``): the tasks;
- verify (tags ``never, verify``): the same tasks in check mode, failing when one would
  still change something: the state the fix set holds;
- rollback (tags ``never, rollback``): the rollback tasks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import yaml

from terry.ai.answer import AIAnswer, AIPlaybook, AITask
from terry.diagnosis.rules import Diagnosis
from terry.inventory.hosts import Host
from terry.remedies.catalogue import Catalogue, Match, Remedy
from terry.remedies.render import Rendered, dump_unsafe_vars

__all__ = ["AI_COMPOSED", "ai_diagnosis", "render_ai_playbook"]

# The remedy name of a playbook Claude composed (no catalogue entry).
AI_COMPOSED = "ai-composed"


def _task(task: AITask, var: str, *, verify: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": task.name,
        task.module: {arg: f"{{{{ {var}.{arg} }}}}" for arg in task.args},
    }
    if verify:
        body |= {
            "check_mode": True,
            "register": "terry_ai_verify",
            "failed_when": "terry_ai_verify is changed",
        }
    return body


def render_ai_playbook(
    *,
    playbook: AIPlaybook,
    proposal_id: int,
    incident_id: int,
    host: str,
    confidence: int,
    model: str,
    directory: str = "playbooks/remediations",
) -> Rendered:
    base = f"{directory}/{proposal_id:05d}-{AI_COMPOSED}"
    apply = {f"terry_ai_task_{i}": t.args for i, t in enumerate(playbook.tasks)}
    undo = {f"terry_ai_rollback_{i}": t.args for i, t in enumerate(playbook.rollback_tasks)}

    def play(name: str, tags: list[str], tasks: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "name": name,
            "hosts": str(host),
            "gather_facts": False,
            "tags": tags,
            "tasks": tasks,
        }

    plays = [
        play(
            "Fix (AI-authored)",
            ["apply"],
            [_task(t, v, verify=False) for t, v in zip(playbook.tasks, apply, strict=True)],
        ),
        play(
            "Verify: the fix holds (check mode changes nothing)",
            ["never", "verify"],
            [_task(t, v, verify=True) for t, v in zip(playbook.tasks, apply, strict=True)],
        ),
        play(
            "Roll back (AI-authored)",
            ["never", "rollback"],
            [_task(t, v, verify=False) for t, v in zip(playbook.rollback_tasks, undo, strict=True)],
        ),
    ]
    header = (
        f"# Rendered by Terry for proposal {proposal_id} (incident {incident_id}).\n"
        f"# AI-AUTHORED: composed by {model or 'Claude'} (confidence {confidence}%), checked\n"
        "# against ai.allowed_modules and each module's argument schema. Values: VARS.\n"
    )
    playbook_text = header + yaml.safe_dump(plays, sort_keys=False, width=100)
    vars_text = dump_unsafe_vars(
        {"terry_proposal_id": proposal_id, **apply, **undo},
        "# Values from Claude's answer. Every string is !unsafe: Ansible uses it as data\n"
        "# and never templates it.\n",
    )
    return Rendered(f"{base}.yml", f"{base}.vars.yml", playbook_text, vars_text)


def ai_diagnosis(
    answer: AIAnswer, host: Host, catalogue: Catalogue, alertname: str, incident_id: int
) -> tuple[Diagnosis, Callable[[int, int], Rendered] | None]:
    """Claude's answer as a diagnosis: a catalogue remedy at (at least) the answer's risk,
    or a composed playbook with its renderer."""
    if not isinstance(answer.fix, AIPlaybook):
        remedy = catalogue.get(answer.fix.remedy)
        assert remedy is not None  # parse_answer accepts catalogue remedies only
        if remedy.risk.rank < answer.risk.rank:
            remedy = replace(remedy, risk=answer.risk)
        return Diagnosis(remedy, (host,), dict(answer.fix.params)), None
    playbook = answer.fix
    remedy = Remedy(
        name=AI_COMPOSED,
        summary=f"AI-authored: {' '.join(answer.diagnosis.split())[:160]}",
        role="ai",
        risk=answer.risk,
        match=Match((alertname,)),
        params=(),
        apply="",
        verify="",
        rollback="",
        verify_summary="The same tasks, run again in check mode, would change nothing",
        rollback_summary=" ".join(answer.rollback.split())[:200],
        prometheus_verify=None,
        modules=playbook.modules,
        source=f"composed by {answer.model or 'Claude'} for incident {incident_id}",
    )

    def renderer(proposal_id: int, incident: int) -> Rendered:
        return render_ai_playbook(
            playbook=playbook,
            proposal_id=proposal_id,
            incident_id=incident,
            host=host.name,
            confidence=answer.confidence,
            model=answer.model,
        )

    return Diagnosis(remedy, (host,), {}), renderer
