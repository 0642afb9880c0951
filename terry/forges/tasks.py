"""What a playbook will run, task by task, for a reviewer who should not have to open the
role: each play's tasks with their modules and arguments, the role task files and static
task imports it names followed, read from the commit under review.

A rendered proposal is three plays of ``import_role`` (fix, verify, rollback); on its own
that says nothing of what runs. ``planned_tasks`` follows what Ansible follows statically
(``import_role``/``include_role`` and ``import_tasks``/``include_tasks`` with a plain file
name, a play's ``roles:``, ``import_playbook``); a name built with Jinja is listed, not
followed. Everything is bounded: depth, tasks per play, characters per argument.

The text comes from a branch (and, for an AI-authored playbook, from a model): it is data
for a fenced block, never markup.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["PlannedTask", "PlayTasks", "planned_tasks", "render_plays"]

Read = Callable[[str], str | None]  # a file of the commit by its path, None when missing

_MAX_DEPTH = 5
_MAX_TASKS = 150  # per play
_MAX_ARGS = 300  # characters of one task's arguments
_IMPORT_TASKS = {
    "import_tasks",
    "include_tasks",
    "ansible.builtin.import_tasks",
    "ansible.builtin.include_tasks",
}
_IMPORT_ROLE = {
    "import_role",
    "include_role",
    "ansible.builtin.import_role",
    "ansible.builtin.include_role",
}
# Task keywords (not modules), as in Ansible's playbook keyword list; the ones a reviewer
# needs to judge a task are shown with it.
_SHOWN = (
    "when",
    "loop",
    "with_items",
    "with_dict",
    "until",
    "retries",
    "check_mode",
    "changed_when",
    "failed_when",
    "ignore_errors",
    "become",
    "become_user",
    "delegate_to",
    "run_once",
    "vars",
)
_KEYWORDS = frozenset(
    {
        *_SHOWN,
        "name",
        "action",
        "args",
        "register",
        "tags",
        "notify",
        "listen",
        "loop_control",
        "delay",
        "no_log",
        "diff",
        "environment",
        "any_errors_fatal",
        "throttle",
        "timeout",
        "collections",
        "module_defaults",
        "become_method",
        "become_flags",
        "become_exe",
        "connection",
        "debugger",
        "ignore_unreachable",
        "local_action",
        "poll",
        "async",
        "port",
        "remote_user",
        "max_fail_percentage",
        "block",
        "rescue",
        "always",
    }
)


@dataclass(frozen=True)
class PlannedTask:
    """One task as it will run: its place (``2.1``), name, module and arguments."""

    number: str
    name: str
    module: str
    args: str
    shown: tuple[str, ...] = ()  # "when: ...", "check_mode: false"...
    source: str = ""  # the file it came from, when it is not the play's own


@dataclass(frozen=True)
class PlayTasks:
    play: str
    hosts: str
    tags: tuple[str, ...]
    tasks: tuple[PlannedTask, ...]
    notes: tuple[str, ...] = ()  # what could not be read or followed


def planned_tasks(
    playbook: str | None, playbook_path: str | None, read: Read, *, roles_path: str = "roles"
) -> tuple[PlayTasks, ...]:
    """The plays of ``playbook`` (at ``playbook_path``) with every task they will run,
    reading role and task files through ``read``. Empty when it is not a playbook (an Argo
    CD manifest, say) or cannot be read."""
    if not playbook:
        return ()
    walker = _Walker(read, roles_path)
    return tuple(walker.playbook(playbook, playbook_path or "playbook.yml", depth=0))


def render_plays(plays: Iterable[PlayTasks]) -> str:
    """The plays as plain text for a fenced block: each task numbered, its module and
    arguments under it."""
    out: list[str] = []
    for play in plays:
        tags = f" (tags: {', '.join(play.tags)})" if play.tags else ""
        out.append(f"PLAY {play.play} on {play.hosts}{tags}")
        for task in play.tasks:
            indent = "  " * task.number.count(".")
            source = f"   [{task.source}]" if task.source else ""
            out.append(f"  {indent}{task.number}. {task.name}{source}")
            out.append(f"  {indent}     {task.module}: {task.args}".rstrip())
            out += [f"  {indent}     {line}" for line in task.shown]
        out += [f"  ({note})" for note in play.notes]
        out.append("")
    return "\n".join(out).rstrip()


class _Walker:
    def __init__(self, read: Read, roles_path: str) -> None:
        self.read = read
        self.roles = roles_path.rstrip("/")
        self.last_source = ""  # the file of the task listed last: a new one is named

    # -- files ------------------------------------------------------------------------------
    def _load(self, path: str, notes: list[str]) -> Any:
        text = self.read(path)
        if text is None:
            notes.append(f"{path} is not in the commit")
            return None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            notes.append(f"{path} is not YAML: {str(exc).splitlines()[0]}")
            return None

    def _task_file(self, role: str, name: str) -> str:
        stem = name if name.endswith((".yml", ".yaml")) else f"{name}.yml"
        return f"{self.roles}/{role}/tasks/{stem}"

    # -- plays ------------------------------------------------------------------------------
    def playbook(self, text: str, path: str, *, depth: int) -> list[PlayTasks]:
        notes: list[str] = []
        try:
            plays = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            return [PlayTasks("?", "?", (), (), (f"{path} is not YAML: {exc}",))]
        out: list[PlayTasks] = []
        for play in plays if isinstance(plays, list) else []:
            if not isinstance(play, dict):
                continue
            imported = _first_of(play, ("import_playbook", "ansible.builtin.import_playbook"))
            if imported is not None:
                out += self._imported_playbook(str(imported), path, depth)
                continue
            out.append(self._play(play, notes))
            notes = []
            self.last_source = ""
        return out

    def _imported_playbook(self, name: str, path: str, depth: int) -> list[PlayTasks]:
        if "{{" in name or depth >= _MAX_DEPTH:
            return [PlayTasks(f"import_playbook {name}", "?", (), (), ("not followed",))]
        target = posixpath.normpath(posixpath.join(posixpath.dirname(path), name))
        text = self.read(target)
        if text is None:
            return [PlayTasks(f"import_playbook {name}", "?", (), (), (f"{target} is missing",))]
        return self.playbook(text, target, depth=depth + 1)

    def _play(self, play: dict[str, Any], notes: list[str]) -> PlayTasks:
        tasks: list[PlannedTask] = []
        items: list[tuple[str, Any]] = []
        for role in play.get("roles") or ():
            name = role.get("role") or role.get("name") if isinstance(role, dict) else role
            items.append(("role", str(name)))
        for key in ("pre_tasks", "tasks", "post_tasks"):
            items += [("task", t) for t in play.get(key) or ()]
        counter = _Counter()
        for kind, item in items:
            if len(tasks) >= _MAX_TASKS:
                notes.append(f"more tasks than {_MAX_TASKS}: the rest are not listed")
                break
            if kind == "role":
                number = counter.next()
                tasks.append(PlannedTask(number, f"role {item}", "role", "tasks/main.yml"))
                self._role(item, "main", number, tasks, notes, depth=1)
            else:
                self._task(item, counter, tasks, notes, source="", depth=0, role=None)
        hosts = play.get("hosts")
        return PlayTasks(
            play=str(play.get("name") or "(unnamed play)"),
            hosts=", ".join(map(str, hosts)) if isinstance(hosts, list) else str(hosts),
            tags=tuple(str(t) for t in _as_list(play.get("tags"))),
            tasks=tuple(tasks),
            notes=tuple(notes),
        )

    # -- tasks ------------------------------------------------------------------------------
    def _role(
        self,
        role: str,
        tasks_from: str,
        number: str,
        tasks: list[PlannedTask],
        notes: list[str],
        *,
        depth: int,
    ) -> None:
        if "{{" in role or "{{" in tasks_from or depth > _MAX_DEPTH:
            return
        path = self._task_file(role, tasks_from)
        loaded = self._load(path, notes)
        counter = _Counter(number)
        for task in loaded if isinstance(loaded, list) else []:
            self._task(task, counter, tasks, notes, source=path, depth=depth, role=role)

    def _task(
        self,
        task: Any,
        counter: _Counter,
        tasks: list[PlannedTask],
        notes: list[str],
        *,
        source: str,
        depth: int,
        role: str | None,
    ) -> None:
        if not isinstance(task, dict) or len(tasks) >= _MAX_TASKS:
            return
        number = counter.next()
        name = str(task.get("name") or "")
        if "block" in task:
            here = source if source != self.last_source else ""
            self.last_source = source
            tasks.append(PlannedTask(number, name or "(block)", "block", "", _shown(task), here))
            inner = _Counter(number)
            for section in ("block", "rescue", "always"):
                for sub in task.get(section) or ():
                    if section != "block" and isinstance(sub, dict):
                        sub = {**sub, "name": f"{section}: {sub.get('name') or ''}".strip()}
                    self._task(sub, inner, tasks, notes, source=source, depth=depth + 1, role=role)
            return
        module, args = _module_of(task)
        here = source if source != self.last_source else ""
        self.last_source = source
        tasks.append(PlannedTask(number, name or module, module, _args(args), _shown(task), here))
        if depth >= _MAX_DEPTH:
            return
        if module in _IMPORT_TASKS:
            name_of = args.get("file") if isinstance(args, dict) else args
            if isinstance(name_of, str) and "{{" not in name_of:
                base = posixpath.dirname(source) if source else ""
                path = posixpath.normpath(posixpath.join(base, name_of)) if base else name_of
                loaded = self._load(path, notes)
                inner = _Counter(number)
                for sub in loaded if isinstance(loaded, list) else []:
                    self._task(sub, inner, tasks, notes, source=path, depth=depth + 1, role=role)
        elif module in _IMPORT_ROLE and isinstance(args, dict):
            target = str(args.get("name") or "")
            self._role(
                target,
                str(args.get("tasks_from") or "main"),
                number,
                tasks,
                notes,
                depth=depth + 1,
            )


class _Counter:
    """Numbers tasks ``1, 2, ...`` under a prefix (``2.1, 2.2`` inside task 2)."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.n = 0

    def next(self) -> str:
        self.n += 1
        return f"{self.prefix}.{self.n}" if self.prefix else str(self.n)


def _first_of(data: dict[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        if key in data:
            return data[key]
    return None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _module_of(task: dict[str, Any]) -> tuple[str, Any]:
    """The task's module and its arguments (``action:``/``local_action:`` too)."""
    for key, value in task.items():
        if key not in _KEYWORDS:
            args = value
            if isinstance(value, dict) and isinstance(task.get("args"), dict):
                args = {**value, **task["args"]}
            elif value is None and isinstance(task.get("args"), dict):
                args = task["args"]
            return str(key), args
    action = task.get("action") or task.get("local_action")
    if isinstance(action, dict):
        module = str(action.get("module") or "?")
        return module, {k: v for k, v in action.items() if k != "module"}
    if isinstance(action, str):
        module, _, rest = action.partition(" ")
        return module, rest
    return "?", None


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _args(args: Any) -> str:
    text = "" if args is None else _compact(args)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ARGS else text[: _MAX_ARGS - 1] + "…"


def _shown(task: dict[str, Any]) -> tuple[str, ...]:
    return tuple(f"{key}: {_args(task[key])}" for key in _SHOWN if key in task)
