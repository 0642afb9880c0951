"""Read ``policies/tenants.yml``: the roadmap's form (``tenants:`` with ``hosts`` and
``permissions``, ``policies:`` with each tenant's ``can_auto_resolve`` and
``approval_threshold``) plus selectors, members, reviewers and routes (docs/tenants.md).

Every mistake is a ``ConfigError`` naming the file and the key (``policies/tenants.yml:
tenants.team-data.members[1].role: 'boss' is not one of viewer, operator, admin``); unknown
keys are mistakes too, so a typo never silently drops a rule.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import yaml

from terry.access import RISKS, Role, valid_tenant
from terry.errors import ConfigError
from terry.tenants.model import IdentityKind, Member, Permission, Selector, Tenant, Tenants

__all__ = ["TENANTS_FILE", "load_tenants", "parse_tenants", "tenants_for_gate", "tenants_path"]

TENANTS_FILE = "tenants.yml"
_TOP = {"tenants", "policies"}
_TENANT_KEYS = {
    "hosts",
    "groups",
    "labels",
    "permissions",
    "members",
    "reviewers",
    "routes",
    "can_auto_resolve",
    "approval_threshold",
    "description",
}
_POLICY_KEYS = {"tenant", "can_auto_resolve", "approval_threshold"}
_ROLES = (Role.VIEWER, Role.OPERATOR, Role.ADMIN)
_DEFAULT_PERMISSIONS = frozenset({Permission.READ, Permission.WRITE, Permission.AUTO_RESOLVE})


def tenants_path(policy_path: str) -> str:
    """Where the tenants file lives in the repository: beside the policies it feeds."""
    return f"{policy_path.rstrip('/')}/{TENANTS_FILE}"


def load_tenants(
    tree: Path, policy_path: str, *, routes: Collection[str] | None = None
) -> Tenants | None:
    """The tenants of the repository tree ``tree``; None when it defines none (no file)."""
    relative = tenants_path(policy_path)
    path = tree / relative
    if not path.is_file():
        return None
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{relative}: not valid YAML: {exc}") from exc
    return parse_tenants(document, source=relative, routes=routes)


def tenants_for_gate(tree: Path, policy_path: str) -> tuple[Tenants | None, str | None]:
    """The tenants for a decision, or why they cannot be read: the gate fails closed to
    review on a broken tenants file (``input.tenants_error``) rather than stopping."""
    try:
        return load_tenants(tree, policy_path), None
    except ConfigError as exc:
        return None, str(exc)


class _Where:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {message}")

    def mapping(self, value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key, f"expected a mapping, got {_kind(value)}")
        return {str(k): v for k, v in value.items()}

    def strings(self, value: Any, key: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, f"expected a list of strings, got {_kind(value)}")
        return tuple(value)

    def known(self, value: dict[str, Any], allowed: Iterable[str], key: str) -> None:
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise self.error(
                f"{key}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(allowed))})"
            )

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {_kind(value)}")
        return value

    def risk(self, value: Any, key: str) -> str:
        text = str(value).lower() if isinstance(value, str) else None
        if text not in RISKS:
            raise self.error(key, f"{value!r} is not one of {', '.join(r.upper() for r in RISKS)}")
        return text


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def parse_tenants(document: Any, *, source: str, routes: Collection[str] | None = None) -> Tenants:
    where = _Where(source)
    top = where.mapping(document if document is not None else {}, "(top level)")
    where.known(top, _TOP, "(top level)")
    raw_tenants = where.mapping(top.get("tenants") or {}, "tenants")
    overrides = _policies(where, top.get("policies"), set(raw_tenants))
    tenants = {
        name: _tenant(where, name, raw, overrides.get(name, {}), routes)
        for name, raw in raw_tenants.items()
    }
    return Tenants(tenants, source)


def _policies(where: _Where, value: Any, names: set[str]) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise where.error("policies", f"expected a list, got {_kind(value)}")
    found: dict[str, dict[str, Any]] = {}
    for n, entry in enumerate(value):
        key = f"policies[{n}]"
        entry = where.mapping(entry, key)
        where.known(entry, _POLICY_KEYS, key)
        tenant = entry.get("tenant")
        if tenant not in names:
            known = ", ".join(sorted(names)) or "none"
            raise where.error(f"{key}.tenant", f"{tenant!r} is not a tenant (tenants: {known})")
        if tenant in found:
            raise where.error(f"{key}.tenant", f"a second policy for {tenant!r}")
        found[tenant] = {k: v for k, v in entry.items() if k != "tenant"}
    return found


def _tenant(
    where: _Where,
    name: str,
    raw: Any,
    policy: dict[str, Any],
    routes: Collection[str] | None,
) -> Tenant:
    key = f"tenants.{name}"
    if not valid_tenant(name) or name == "*":
        raise where.error(key, "a tenant name is lower-case letters, digits, '.', '_' or '-'")
    raw = where.mapping(raw if raw is not None else {}, key)
    where.known(raw, _TENANT_KEYS, key)
    for setting in ("can_auto_resolve", "approval_threshold"):
        if setting in raw and setting in policy:
            raise where.error(f"{key}.{setting}", "also set under policies: set it once")
    settings = {**raw, **policy}
    permissions = _permissions(where, raw.get("permissions"), f"{key}.permissions")
    manual = Permission.MANUAL_APPROVAL_ONLY in permissions
    default_auto = Permission.AUTO_RESOLVE in permissions and not manual
    auto = (
        where.boolean(settings["can_auto_resolve"], f"{key}.can_auto_resolve")
        if "can_auto_resolve" in settings
        else default_auto
    )
    if auto and manual:
        raise where.error(
            f"{key}.can_auto_resolve",
            "true contradicts the permission manual-approval-only",
        )
    threshold = (
        where.risk(settings["approval_threshold"], f"{key}.approval_threshold")
        if "approval_threshold" in settings
        else RISKS[-1]
    )
    labels = where.mapping(raw.get("labels") or {}, f"{key}.labels")
    tenant_routes = where.strings(raw.get("routes"), f"{key}.routes")
    if routes is not None:
        for n, route in enumerate(tenant_routes):
            if route not in routes:
                known = ", ".join(sorted(routes)) or "none"
                raise where.error(
                    f"{key}.routes[{n}]",
                    f"{route!r} is not a route of notifications.routes (routes: {known})",
                )
    return Tenant(
        name=name,
        selector=Selector(
            hosts=where.strings(raw.get("hosts"), f"{key}.hosts"),
            groups=where.strings(raw.get("groups"), f"{key}.groups"),
            labels={str(k): str(v) for k, v in labels.items()},
        ),
        permissions=permissions,
        can_auto_resolve=auto,
        approval_threshold=threshold,
        members=tuple(
            _member(where, m, f"{key}.members[{n}]", role_required=True)
            for n, m in enumerate(_list(where, raw.get("members"), f"{key}.members"))
        ),
        reviewers=tuple(
            _reviewer(where, r, f"{key}.reviewers[{n}]")
            for n, r in enumerate(_list(where, raw.get("reviewers"), f"{key}.reviewers"))
        ),
        routes=tenant_routes,
    )


def _list(where: _Where, value: Any, key: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise where.error(key, f"expected a list, got {_kind(value)}")
    return value


def _permissions(where: _Where, value: Any, key: str) -> frozenset[Permission]:
    if value is None:
        return _DEFAULT_PERMISSIONS
    found: set[Permission] = set()
    for n, item in enumerate(where.strings(value, key)):
        try:
            found.add(Permission(item))
        except ValueError:
            known = ", ".join(p.value for p in Permission)
            raise where.error(f"{key}[{n}]", f"{item!r} is not one of {known}") from None
    return frozenset(found)


def _member(where: _Where, value: Any, key: str, *, role_required: bool) -> Member:
    entry = where.mapping(value, key)
    kinds = [k for k in entry if k != "role"]
    known = ", ".join(k.value for k in IdentityKind)
    if len(kinds) != 1 or kinds[0] not in {k.value for k in IdentityKind}:
        raise where.error(key, f"name exactly one identity ({known}) and a role")
    name = entry[kinds[0]]
    if not isinstance(name, str) or not name:
        raise where.error(f"{key}.{kinds[0]}", f"expected a name, got {_kind(name)}")
    if "role" not in entry and role_required:
        raise where.error(f"{key}.role", "missing (viewer, operator or admin)")
    raw_role = entry.get("role", Role.OPERATOR.value)
    role = next((r for r in _ROLES if r.value == raw_role), None)
    if role is None:
        roles = ", ".join(r.value for r in _ROLES)
        raise where.error(f"{key}.role", f"{raw_role!r} is not one of {roles}")
    return Member(IdentityKind(kinds[0]), name, role)


def _reviewer(where: _Where, value: Any, key: str) -> Member:
    """``alice`` (a Terry user), ``github:octocat``, or a mapping as for members."""
    if isinstance(value, dict):
        return _member(where, value, key, role_required=False)
    if not isinstance(value, str) or not value:
        raise where.error(key, f"expected a name or kind:name, got {_kind(value)}")
    kind, sep, name = value.partition(":")
    if not sep:
        return Member(IdentityKind.USER, value, Role.OPERATOR)
    try:
        return Member(IdentityKind(kind), name, Role.OPERATOR)
    except ValueError:
        known = ", ".join(k.value for k in IdentityKind)
        raise where.error(key, f"{kind!r} is not one of {known}") from None
