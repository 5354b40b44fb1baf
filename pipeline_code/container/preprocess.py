"""SageMaker entry script: ``python3 preprocess.py ARGS`` from the unpacked code bundle.

The job is ``dogbreeds_jobs/data/preprocess.py``.
"""

from dogbreeds_jobs.data.preprocess import main

if __name__ == "__main__":
    raise SystemExit(main())
