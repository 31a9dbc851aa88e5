"""Storage of surveys, call attempts, outcomes and their delivery (SQLAlchemy 2 + alembic).

The store takes an Engine; it does not own it.
"""
