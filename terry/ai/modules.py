"""The Ansible modules an AI-composed playbook may use, and the arguments each accepts.

A module is usable only when it is listed here (its arguments have a schema and checks) and
in ``ai.allowed_modules``. Names are fully qualified; ``ansible.builtin.systemd`` and
``ansible.builtin.sysctl`` are Ansible's own redirects and are normalised to the module they
name. Raw shell (``command``, ``shell``) needs ``ai.allow_shell``; ``raw`` and ``script``
are never accepted. Values are checked with the catalogue's own parameter types
(``terry.remedies.params``): names like a ``name`` parameter, paths like a ``path``
parameter under the host's allowed roots.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from terry.remedies.params import NAME_RE, ParamError, ParamSpec, ParamType

__all__ = [
    "ALIASES",
    "DEFAULT_ALLOWED_MODULES",
    "DEFAULT_ALLOWED_PATHS",
    "MODULES",
    "NEVER_MODULES",
    "SHELL_MODULES",
    "Arg",
    "ArgKind",
    "ModuleSpec",
    "canonical_module",
    "check_allowed_modules",
]

FQCN_RE = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+\.[a-z0-9_]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # tab and newline allowed
_SYSCTL_KEY = re.compile(r"^[a-z0-9_]+(?:[./][a-z0-9_-]+)+$")
_SYSCTL_VALUE = re.compile(r"^[A-Za-z0-9 ._:/,-]{1,256}$")
_MODE = re.compile(r"^0?[0-7]{3}$")
_PATH_PATTERN = r"^/[A-Za-z0-9_.@/+-]*$"


class ArgKind(StrEnum):
    NAME = "name"  # a unit, service or user name: like a catalogue `name` parameter
    PATH = "path"  # absolute, under the host's allowed roots: like a `path` parameter
    ENUM = "enum"
    BOOL = "bool"
    MODE = "mode"  # octal string, e.g. "0644": no setuid/sticky bits, not world-writable
    LINE = "line"  # one line of text, no control characters
    REGEXP = "regexp"  # a Python regular expression (what Ansible uses)
    TEXT = "text"  # file content: lines of text (tabs and newlines allowed)
    SYSCTL_KEY = "sysctl_key"
    SYSCTL_VALUE = "sysctl_value"
    COMMAND = "command"  # raw shell: only with ai.allow_shell


@dataclass(frozen=True)
class Arg:
    kind: ArgKind
    required: bool = False
    values: tuple[str, ...] = ()
    max_length: int = 256
    description: str = ""

    def schema(self) -> dict[str, Any]:
        """This argument's JSON Schema, for the tool Claude is given."""
        out: dict[str, Any]
        match self.kind:
            case ArgKind.BOOL:
                out = {"type": "boolean"}
            case ArgKind.ENUM:
                out = {"type": "string", "enum": list(self.values)}
            case ArgKind.NAME:
                out = {"type": "string", "pattern": NAME_RE.pattern, "maxLength": 64}
            case ArgKind.PATH:
                out = {"type": "string", "pattern": _PATH_PATTERN, "maxLength": 1024}
            case ArgKind.MODE:
                out = {"type": "string", "pattern": _MODE.pattern}
            case ArgKind.SYSCTL_KEY:
                out = {"type": "string", "pattern": _SYSCTL_KEY.pattern, "maxLength": 128}
            case ArgKind.SYSCTL_VALUE:
                out = {"type": ["string", "integer"]}
            case _:
                out = {"type": "string", "minLength": 1, "maxLength": self.max_length}
        if self.description:
            out["description"] = self.description
        return out

    def check(self, key: str, value: Any, roots: tuple[str, ...]) -> Any:
        """The value, normalised (paths), or ParamError saying why it cannot be used."""
        match self.kind:
            case ArgKind.NAME:
                return ParamSpec(key, ParamType.NAME).check(value)
            case ArgKind.PATH:
                return ParamSpec(key, ParamType.PATH, within=roots).check(value)
            case ArgKind.MODE:
                if not _MODE.fullmatch(value):
                    raise ParamError(f"{value!r} is not an octal mode like 0644")
                if int(value, 8) & 0o002:
                    raise ParamError(f"mode {value} makes it world-writable")
                return value if value.startswith("0") else "0" + value
            case ArgKind.LINE | ArgKind.COMMAND:
                if _CONTROL.search(value):
                    raise ParamError("holds control characters (one line only)")
            case ArgKind.TEXT:
                if _CONTROL_BUT_TEXT.search(value):
                    raise ParamError("holds control characters other than tab and newline")
            case ArgKind.REGEXP:
                if _CONTROL.search(value):
                    raise ParamError("holds control characters")
                try:
                    re.compile(value)
                except re.error as exc:
                    raise ParamError(f"is not a valid regular expression: {exc}") from exc
            case ArgKind.SYSCTL_KEY:
                if not _SYSCTL_KEY.fullmatch(value):
                    raise ParamError(f"{value!r} is not a sysctl key like net.core.somaxconn")
            case ArgKind.SYSCTL_VALUE:
                text = str(value)
                if not _SYSCTL_VALUE.fullmatch(text):
                    raise ParamError(f"{text[:60]!r} is not a plain sysctl value")
                return text
        return value


@dataclass(frozen=True)
class ModuleSpec:
    name: str
    summary: str
    args: tuple[tuple[str, Arg], ...]
    shell: bool = False

    def schema(self) -> dict[str, Any]:
        """The JSON Schema of this module's ``args``: only the arguments listed here."""
        return {
            "type": "object",
            "additionalProperties": False,
            "required": [k for k, a in self.args if a.required],
            "properties": {k: a.schema() for k, a in self.args},
        }

    def check(self, args: Mapping[str, Any], roots: tuple[str, ...]) -> dict[str, Any]:
        """Arguments that fit the schema, checked value by value and as a whole."""
        specs = dict(self.args)
        checked: dict[str, Any] = {}
        for key, value in args.items():
            try:
                checked[key] = specs[key].check(key, value, roots)
            except ParamError as exc:
                raise ParamError(f"args.{key}: {exc}") from exc
        _whole(self.name, checked, roots)
        return checked


def _whole(module: str, args: dict[str, Any], roots: tuple[str, ...]) -> None:
    """Rules across arguments (what the module itself would refuse, or what is too broad)."""
    short = module.rsplit(".", 1)[-1]
    if short in ("service", "systemd_service") and "state" not in args and "enabled" not in args:
        raise ParamError("give state or enabled (or both)")
    if short == "lineinfile":
        state = args.get("state", "present")
        if state == "present" and "line" not in args:
            raise ParamError("state present needs line")
        if state == "absent" and "line" not in args and "regexp" not in args:
            raise ParamError("state absent needs regexp or line")
    if short == "file" and args.get("state") == "absent":
        normal_roots = {r.rstrip("/") or "/" for r in roots}
        if args["path"] in normal_roots:
            raise ParamError(f"args.path: removing an allowed root ({args['path']}) is refused")
    if short == "sysctl" and args.get("state", "present") == "present" and "value" not in args:
        raise ParamError("state present needs value")


_SERVICE_STATE = ("started", "stopped", "restarted", "reloaded")


def _service(name: str, summary: str) -> ModuleSpec:
    return ModuleSpec(
        name,
        summary,
        (
            ("name", Arg(ArgKind.NAME, required=True, description="the service (unit) name")),
            ("state", Arg(ArgKind.ENUM, values=_SERVICE_STATE)),
            ("enabled", Arg(ArgKind.BOOL, description="start at boot")),
        ),
    )


_PATH_HELP = "absolute path under one of the host's allowed roots"
_COMMAND_ARGS = (
    ("cmd", Arg(ArgKind.COMMAND, required=True, max_length=1024)),
    ("chdir", Arg(ArgKind.PATH, description=_PATH_HELP)),
)

MODULES: dict[str, ModuleSpec] = {
    m.name: m
    for m in (
        _service("ansible.builtin.service", "start, stop, restart or reload a service"),
        _service("ansible.builtin.systemd_service", "the same, through systemd"),
        ModuleSpec(
            "ansible.builtin.file",
            "create a file or directory, remove one, or set its mode",
            (
                ("path", Arg(ArgKind.PATH, required=True, description=_PATH_HELP)),
                ("state", Arg(ArgKind.ENUM, values=("file", "directory", "absent", "touch"))),
                ("mode", Arg(ArgKind.MODE, description="octal string, e.g. 0644")),
            ),
        ),
        ModuleSpec(
            "ansible.builtin.lineinfile",
            "make sure one line is in a text file (or is not)",
            (
                ("path", Arg(ArgKind.PATH, required=True, description=_PATH_HELP)),
                ("regexp", Arg(ArgKind.REGEXP, max_length=512)),
                ("line", Arg(ArgKind.LINE, max_length=1024)),
                ("state", Arg(ArgKind.ENUM, values=("present", "absent"))),
            ),
        ),
        ModuleSpec(
            "ansible.builtin.copy",
            "write a small text file with the given content",
            (
                ("dest", Arg(ArgKind.PATH, required=True, description=_PATH_HELP)),
                ("content", Arg(ArgKind.TEXT, required=True, max_length=16384)),
                ("mode", Arg(ArgKind.MODE, description="octal string, e.g. 0644")),
            ),
        ),
        ModuleSpec(
            "ansible.posix.sysctl",
            "set a kernel parameter (needs the ansible.posix collection)",
            (
                ("name", Arg(ArgKind.SYSCTL_KEY, required=True)),
                ("value", Arg(ArgKind.SYSCTL_VALUE)),
                ("state", Arg(ArgKind.ENUM, values=("present", "absent"))),
            ),
        ),
        ModuleSpec("ansible.builtin.command", "run a command", _COMMAND_ARGS, shell=True),
        ModuleSpec("ansible.builtin.shell", "run a shell command", _COMMAND_ARGS, shell=True),
    )
}

SHELL_MODULES = frozenset(
    {
        "ansible.builtin.command",
        "ansible.builtin.shell",
        "ansible.builtin.raw",
        "ansible.builtin.script",
    }
)
# Accepted under no setting: raw bypasses the module system, script ships a controller file.
NEVER_MODULES = frozenset({"ansible.builtin.raw", "ansible.builtin.script"})
ALIASES = {
    "ansible.builtin.systemd": "ansible.builtin.systemd_service",
    "ansible.builtin.sysctl": "ansible.posix.sysctl",
}
DEFAULT_ALLOWED_MODULES = (
    "ansible.builtin.service",
    "ansible.builtin.systemd_service",
    "ansible.builtin.file",
    "ansible.builtin.lineinfile",
    "ansible.builtin.copy",
)
# Where an AI-composed task may touch files unless the host says otherwise
# (inventory variable terry_ai_paths) or terry.yml does (ai.allowed_paths).
DEFAULT_ALLOWED_PATHS = ("/srv", "/opt", "/data", "/var/lib", "/var/log", "/tmp")


def canonical_module(name: str) -> str:
    """The fully-qualified module ``name`` means, or ValueError saying why it is refused."""
    if not isinstance(name, str) or not name:
        raise ValueError("a module name is required")
    if "." not in name:
        hint = f"ansible.builtin.{name}" if re.fullmatch(r"[a-z0-9_]{1,64}", name) else None
        suggestion = f" (e.g. {hint})" if hint else ""
        raise ValueError(f"{name[:60]!r} is not fully qualified{suggestion}")
    if name.startswith("ansible.legacy."):
        raise ValueError(f"{name[:60]!r} may name a local module; use ansible.builtin.*")
    name = ALIASES.get(name, name)
    if not FQCN_RE.fullmatch(name):
        raise ValueError(f"{name[:60]!r} is not a module name")
    return name


def check_allowed_modules(names: Iterable[str], *, allow_shell: bool) -> tuple[str, ...]:
    """``ai.allowed_modules`` normalised, or ValueError naming the first it cannot allow."""
    out: list[str] = []
    for raw in names:
        name = canonical_module(raw)
        if name in NEVER_MODULES:
            raise ValueError(f"{name} is never allowed for AI-authored playbooks")
        if name in SHELL_MODULES and not allow_shell:
            raise ValueError(f"{name} runs raw shell: it needs ai.allow_shell: true")
        if name not in MODULES:
            known = ", ".join(sorted(MODULES))
            raise ValueError(f"{name}: no argument schema for it (known: {known})")
        if name not in out:
            out.append(name)
    return tuple(out)
