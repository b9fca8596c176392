"""taskq: an ORM-backed task queue for Django, compatible with Django-Q2."""

__version__ = "0.1.0"
