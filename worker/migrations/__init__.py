"""Alembic migrations of the database schema (``ccm-intake`` runs them at start)."""
