"""The folder ``guard_environment`` puts first on a job's PYTHONPATH (see import_guard.py).

Python imports its ``sitecustomize.py`` at start-up, before any job code, in the job process and in
every Python process it starts (torchrun workers), because they inherit the environment.
"""
