"""The integration suite's real servers (Prefect on PostgreSQL), for the slow tests here."""

from tests.integration.conftest import postgres_db, prefect_server  # noqa: F401
