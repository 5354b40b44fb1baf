"""The job code shipped in the code bundle, one subpackage per job.

The bundle root (this package's parent folder) is on ``sys.path`` in every container, so the entry
scripts there (``train.py`` ...) stay where SageMaker looks for them and import their job from
here. The name is distinctive because it sits on ``sys.path`` beside everything the images hold.
"""
