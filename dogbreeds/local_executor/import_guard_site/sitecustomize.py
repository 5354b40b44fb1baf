"""Start-up hook of guarded job processes: install the import guard, then step aside.

``guard_environment`` puts this folder first on PYTHONPATH and the rule in DOGBREEDS_IMPORT_GUARD.
Python's ``site`` module imports this file before any job code runs. It installs the rule and runs
the ``sitecustomize`` this file shadows, if there is one. This folder stays on ``sys.path``: the
SageMaker training toolkit starts the entry point with ``PYTHONPATH`` rebuilt from its own
``sys.path``, and the guard must reach that process too (job code importing the modules here is
refused like any other module the image lacks). A rule that cannot be read stops the process:
running job code unguarded would hide exactly the failures the guard is for.
"""

import importlib.machinery
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.realpath(__file__))


def _main() -> None:
    import dogbreeds_import_hook

    try:
        dogbreeds_import_hook.install_from_environment()
    except Exception as error:  # noqa: BLE001 - any malformed rule must stop the job
        sys.stderr.write(f"dogbreeds import guard: cannot install ({error!r})\n")
        sys.stderr.flush()
        os._exit(70)
    others = [p for p in sys.path if os.path.realpath(p or os.curdir) != _HERE]
    shadowed = importlib.machinery.PathFinder.find_spec("sitecustomize", others)
    if shadowed is not None and shadowed.origin and os.path.dirname(
        os.path.realpath(shadowed.origin)
    ) != _HERE:
        module = importlib.util.module_from_spec(shadowed)
        shadowed.loader.exec_module(module)


_main()
