"""Alembic environment: migrates the connection chatforge.store.db hands over, or the configured URL.

`chatforge.store.db.upgrade` passes its connection in `config.attributes["connection"]`; the alembic command
line works too: `alembic -x url=sqlite:///chatforge.db upgrade head` from a config naming this folder.
"""

from alembic import context

from chatforge.store.models import Base

config = context.config
target_metadata = Base.metadata


def url() -> str:
    return context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")


def run(connection) -> None:
    # batch mode: SQLite cannot ALTER most things, so later revisions' alters are done as copy-and-rename there
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
elif config.attributes.get("connection") is not None:
    run(config.attributes["connection"])
else:
    from chatforge.store.db import make_engine

    with make_engine(url()).begin() as conn:
        run(conn)
