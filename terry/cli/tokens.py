"""``terry tokens``: API tokens for people and scripts (``terry.store.api_tokens``): made
with a role in a tenant and an expiry, shown once, listed by id, revoked."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import click
from rich.table import Table

from terry.access import ANY_TENANT, Role
from terry.cli.context import actor_name, open_config, open_store
from terry.cli.output import console, emit_json, err_console, inert, output_option
from terry.durations import parse_duration
from terry.errors import InputError, TerryError

if TYPE_CHECKING:
    from terry.config import Config
    from terry.inventory.hosts import Host
    from terry.store.api_tokens import ApiToken
    from terry.tenants.model import Tenants

_ROLES = ("viewer", "operator", "admin")


def _when(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M}"


@click.group("tokens")
def command() -> None:
    """API tokens: a role in a tenant for one user, shown once, stored as a digest.

    \b
    Roles (docs/permissions.md has the whole table):
      viewer    reads the JSON API, /metrics and the console
      operator  also approves, rejects and applies up to medium risk, rolls back any
      admin     everything, at any risk; configuration and tokens
    \b
      terry tokens create --user alice --role operator --expires 30d
      curl -H "Authorization: Bearer tk_..." http://terry:8080/api/v1/incidents
      terry tokens list
      terry tokens revoke tk_0a1b2c3d

    'terry serve' accepts them as bearer tokens for the API and to log in to the console,
    beside the tokens in TERRY_READ_TOKENS and TERRY_OPERATOR_TOKENS. A revoked or expired
    token is refused (401) at once, and the server's log says which token and why. The
    audit names who acted with the token: "console:alice (token tk_0a1b2c3d)".
    """


@command.command("create")
@click.option("--user", required=True, help="Who the token is for (a name, as in the audit).")
@click.option("--role", type=click.Choice(_ROLES), required=True, help="What it may do.")
@click.option(
    "--tenant",
    default=ANY_TENANT,
    show_default=True,
    help="The tenant its role holds in ('*': every tenant).",
)
@click.option(
    "--expires",
    default="90d",
    show_default=True,
    help="How long it lasts (30d, 12h, 2w) or 'never'.",
)
@output_option
@click.pass_context
def create(
    ctx: click.Context, user: str, role: str, tenant: str, expires: str, output: str
) -> None:
    """Make a token and print it ONCE: Terry keeps only its SHA-256 digest.

    \b
      terry tokens create --user alice --role operator --expires 30d
      terry tokens create --user ci --role viewer --tenant shop --output json

    Store the token where its user keeps secrets; a lost token is revoked and made again.
    Exit codes: 0 made, 2 a bad user, tenant or duration.
    """
    from terry.store.api_tokens import create_token

    if expires.strip().lower() == "never":
        expires_in = None
    else:
        try:
            expires_in = timedelta(seconds=parse_duration(expires))
        except ValueError as exc:
            raise InputError(f"--expires: {exc} (or 'never')") from exc
    config = open_config(ctx)
    store = open_store(config)
    made, token = create_token(
        store,
        user=user,
        role=Role(role),
        tenant=tenant,
        expires_in=expires_in,
        created_by=actor_name(config, None),
    )
    if (unknown := _unknown_tenant(config, made.tenant)) is not None:
        err_console.print(unknown)
    if output == "json":
        emit_json({**_row(made), "token": token})
        return
    console.print(f"token {made.id} for {inert(made.user)} ({made.role}, tenant {made.tenant})")
    console.print(f"expires: {_when(made.expires_at) if made.expires_at else 'never'}")
    console.print("The token (shown once, Terry keeps only its digest):")
    click.echo(token)


@command.command("list")
@click.option("--user", help="Only this user's tokens.")
@output_option
@click.pass_context
def list_(ctx: click.Context, user: str | None, output: str) -> None:
    """Every token by id: user, role, tenant, status, created, expires, last used. Never a
    token itself (Terry does not have it).

    \b
      terry tokens list
      terry tokens list --user alice --output json
    """
    from terry.store.api_tokens import list_tokens

    tokens = list_tokens(open_store(open_config(ctx)), user=user)
    if output == "json":
        emit_json([_row(t) for t in tokens])
        return
    if not tokens:
        console.print("no API tokens (terry tokens create)")
        return
    table = Table("id", "user", "role", "tenant", "status", "created", "expires", "last used")
    for t in tokens:
        table.add_row(
            t.id,
            inert(t.user),
            str(t.role),
            inert(t.tenant),
            str(t.status()),
            _when(t.created_at),
            _when(t.expires_at) if t.expires_at else "never",
            _when(t.last_used_at),
        )
    console.print(table)


@command.command("revoke")
@click.argument("token_id", metavar="ID")
@output_option
@click.pass_context
def revoke(ctx: click.Context, token_id: str, output: str) -> None:
    """Revoke token ID (tk_...): from now on it is refused, and a console session made
    with it ends. Revoking twice keeps the first time.

    \b
      terry tokens revoke tk_0a1b2c3d

    Exit codes: 0 revoked, 4 no such token.
    """
    from terry.store.api_tokens import revoke_token

    revoked = revoke_token(open_store(open_config(ctx)), token_id.strip())
    if output == "json":
        emit_json(_row(revoked))
        return
    console.print(f"revoked {revoked.id} of {inert(revoked.user)} at {_when(revoked.revoked_at)}")


def _row(token: ApiToken) -> dict[str, object]:
    return {
        "id": token.id,
        "user": token.user,
        "role": str(token.role),
        "tenant": token.tenant,
        "status": str(token.status()),
        "created_at": token.created_at,
        "created_by": token.created_by,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
        "last_used_at": token.last_used_at,
    }


def _unknown_tenant(config: Config, tenant: str) -> str | None:
    """A warning when no host on main is in ``tenant`` (a misspelt name): the token works,
    and sees nothing until main places a host there."""
    if tenant == ANY_TENANT:
        return None
    from terry.gitops.repo import Repo
    from terry.inventory.hosts import load_inventory
    from terry.tenants.loader import load_tenants

    try:
        repo = Repo(config.repo, main_branch=config.main_branch)
        tree = repo.tree(repo.head())
        tenancy = load_tenants(tree, config.policy.path)
        inventory = load_inventory(tree, config.inventory)
    except TerryError:
        return None  # nothing to compare with: no warning rather than a wrong one
    known = set(tenancy.tenants) if tenancy is not None else set()
    known |= {t for h in inventory.hosts.values() for t in _placed(tenancy, h)}
    if tenant in known:
        return None
    names = ", ".join(sorted(known)[:10]) or "none"
    return (
        f"warning: no host on main is in tenant {tenant!r} (tenants: {names}); the token "
        "sees nothing until one is"
    )


def _placed(tenancy: Tenants | None, host: Host) -> tuple[str, ...]:
    if tenancy is not None:
        return tenancy.tenants_of(host)
    return (host.tenant,) if host.tenant else ()
