"""Django-Q2 1.11.1 fixtures and helpers for ``test_compat_migration.py``."""
