"""Third-party code the container code needs and the SageMaker images lack, copied in unmodified.

Each package keeps its licence and an ORIGIN.txt (what was copied, from which release). Job code
loads it from this folder (``dogbreeds_jobs/serving/backbones.py``, ``import_vendored``), never by
the upstream name, so the copy in the code bundle (or in a model artifact's ``code/``) is what
runs, everywhere.
"""
