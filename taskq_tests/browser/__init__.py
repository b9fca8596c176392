"""A tour of taskq's admin in a real browser: ``nox -s browser`` runs ``tour.py``."""
