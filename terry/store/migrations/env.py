"""Alembic environment: Terry passes its own connection in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from terry.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - Terry always passes one
    raise RuntimeError("run migrations through terry.store.Store.migrate()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
