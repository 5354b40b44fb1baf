"""The code bundle's root: SageMaker entry scripts, and the job code in ``dogbreeds_jobs/``.

In a container this folder is the working directory and on ``sys.path``, so the entry scripts
import ``dogbreeds_jobs.<job>`` and ``contract`` (which the bundle carries) by those names. On the
host the same code is ``pipeline_code.container.dogbreeds_jobs``; inside the package every import
of a sibling is relative, so both work without touching ``sys.path``.
"""
