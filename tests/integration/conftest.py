"""Integration fixtures: real servers on PostgreSQL, and a tiny copy of the project.

The team configuration (as in production) is an MLflow server and a Prefect server, both backed
by PostgreSQL: these fixtures start exactly that against the machine's PostgreSQL
(127.0.0.1:5432, trust auth), each on a fresh database that is dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.servers import BIN, PG, free_port, spawn, stop, wait_http
from tests.project import make_tiny_project


@contextlib.contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """Create an empty PostgreSQL database on the local server; drop it afterwards."""
    import psycopg2

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(**PG)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.close()


@pytest.fixture()
def postgres_db() -> Iterator[str]:
    with fresh_database("synthmed_prefect") as name:
        yield name


@pytest.fixture()
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1 backed by PostgreSQL; yields its http:// URI."""
    with fresh_database("synthmed_mlflow") as name:
        port = free_port()
        log = tmp_path / "mlflow-server.log"
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        env.pop("MLFLOW_TRACKING_URI", None)
        proc = spawn(
            [
                str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
                "--workers", "1",
                "--backend-store-uri", f"postgresql://postgres@127.0.0.1:5432/{name}",
                "--artifacts-destination", str(tmp_path / "mlflow-artifacts"),
            ],
            env,
            log,
        )  # fmt: skip
        uri = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{uri}/health", proc, 90, log)
            yield uri
        finally:
            stop(proc)


@pytest.fixture()
def prefect_server(tmp_path: Path, postgres_db: str) -> Iterator[dict[str, str]]:
    """`prefect server start` on 127.0.0.1 backed by PostgreSQL; yields the client env."""
    port = free_port()
    home = tmp_path / "prefect-home"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": (
            f"postgresql+asyncpg://postgres@127.0.0.1:5432/{postgres_db}"
        ),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    log = tmp_path / "prefect-server.log"
    proc = spawn(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env,
        log,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        wait_http(f"{api}/health", proc, 120, log)
        client = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": api}
        client.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
        yield client
    finally:
        stop(proc)


@pytest.fixture()
def tiny_project(repo_root: Path, tmp_path: Path) -> Path:
    return make_tiny_project(repo_root, tmp_path / "project")
