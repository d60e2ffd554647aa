"""The schema comes from the migrations, and the migrations match the models."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tests.app import ROOT
from worker.store import Base, Database


def test_the_migrations_build_exactly_the_schema_the_models_describe(db_url: str) -> None:
    db = Database(db_url)
    db.create_schema()
    db.create_schema()  # a second start finds nothing to do
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = compare_metadata(context, Base.metadata)
    db.dispose()
    assert differences == [], "the models changed without a migration (alembic revision)"


def test_processes_starting_together_migrate_one_after_the_other(db_url: str) -> None:
    # Each process imports everything, says so, and waits for the word to go: the four
    # migrations then start within a millisecond of each other.
    code = (
        "import sys; from worker.store import Database; db = Database(sys.argv[1]); "
        "db.engine; print('ready', flush=True); sys.stdin.readline(); db.create_schema()"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, db_url],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline() == b"ready\n"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        p.stdin.flush()
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
