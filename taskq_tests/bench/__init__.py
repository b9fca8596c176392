"""The benchmark behind ``nox -s bench``: taskq against Django-Q2 (see docs/benchmark.md).

Not tests: pytest collects none of these modules (no ``test_*.py`` names).

- ``run.py``: the driver (standard library only). Builds a virtualenv for each system,
  starts PostgreSQL when needed, runs every measurement and prints the table.
- ``workload.py``: one measurement, run inside a system's virtualenv.
- ``settings.py``: the Django settings of those processes, chosen by environment.
- ``tasks.py``: the task functions both systems run.
"""
