"""A PostgreSQL database of a benchmark's own: named after the process (two runs on one server
do not collide), migrated, and dropped at the end even when setting Django up fails."""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def scratch_database(script: str, prefix: str, **env: str) -> Iterator[str]:
    """Point Django at a new database `<prefix>_<pid>` on DATABASE_URL's server (with `env`
    added to the environment), migrate it and yield its name; drop it on the way out."""
    sys.path.insert(0, str(ROOT))
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit(f"bench/{script} needs DATABASE_URL of a PostgreSQL server (see its docstring)")
    base, _, _ = url.rpartition("/")
    name = f"{prefix}_{os.getpid()}"
    os.environ.update(
        DJANGO_SETTINGS_MODULE="console.settings",
        DATABASE_URL=f"{base}/{name}",
        SECRET_KEY=os.environ.get("SECRET_KEY", "bench"),
        LOG_LEVEL="WARNING",
        CELERY_TASK_ALWAYS_EAGER="1",
        **env,
    )
    import psycopg

    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        yield name
    finally:
        from django.apps import apps

        if apps.ready:
            from django.db import connections

            connections.close_all()
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
