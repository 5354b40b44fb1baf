"""Import a module from a code folder the way the runtime that owns the folder does.

SageMaker's inference toolkit and the Lambda runtime both put their code folder first on
``sys.path`` and import the entry module by name, so it binds to the modules the folder carries.
Loading such a folder in a process that already holds modules of the same top-level names (this
project's own copies, or another model artifact's) needs those set aside meanwhile; evaluation and
local serving load a model's ``code/``, local mode loads a Lambda's staged asset. Standard library
only: the code bundle carries this module.
"""

from __future__ import annotations

import importlib
import sys
import threading
from pathlib import Path
from types import ModuleType

# The import swaps sys.modules entries and sys.path: one at a time.
_LOCK = threading.Lock()


def import_isolated(code_dir: Path, module_name: str) -> ModuleType:
    """``module_name`` imported from ``code_dir``, first on ``sys.path``, bound to the folder's modules.

    Modules of the folder's top-level names already imported here are set aside during the import and
    put back afterwards, and nothing of the folder stays in ``sys.modules``: the caller keeps the
    returned module, this process keeps its own copies. Imports the module makes lazily later resolve
    against the process's ``sys.path`` again.
    """
    code_dir = Path(code_dir).resolve()
    # The modules and packages at the folder's root.
    carried = {path.stem for path in code_dir.glob("*.py")}
    carried |= {path.parent.name for path in code_dir.glob("*/__init__.py")}

    def is_carried(name: str) -> bool:
        return name.partition(".")[0] in carried

    with _LOCK:
        saved = {name: sys.modules.pop(name) for name in list(sys.modules) if is_carried(name)}
        sys.path.insert(0, str(code_dir))
        try:
            return importlib.import_module(module_name)
        finally:
            sys.path.remove(str(code_dir))
            for name in [name for name in sys.modules if is_carried(name)]:
                del sys.modules[name]
            sys.modules.update(saved)
