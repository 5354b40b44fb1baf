"""The job code the code bundle carries, one package per job: data, training, serving, monitoring.

The bundle's root (this package's parent folder) is on ``sys.path`` in every container, so the entry
scripts there (``train.py`` ...) stay where SageMaker looks for them and import their job from here.
The name is distinctive because it sits on ``sys.path`` beside everything the images hold. Imports
between the job packages are relative, so on the host the same code works as
``pipeline_code.container.dogbreeds_jobs``.
"""
