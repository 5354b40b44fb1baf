"""SageMaker's entry point for the Train step; the job itself is ``dogbreeds_jobs.training``.

SageMaker (and the local executor) runs ``train.py`` from the unpacked code bundle, alone or under
torchrun, with the bundle root on ``sys.path``: the file name is the estimator's ``entry_point``
and must stay, the code lives in the package.
"""

from dogbreeds_jobs.training.main import main

if __name__ == "__main__":
    raise SystemExit(main())
