"""Alembic environment: always run with a connection handed in by joinedup.storage.migrate."""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - guarded by joinedup.storage.migrate
    raise RuntimeError("run migrations with `joinedup db upgrade`, not the alembic CLI")

context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
