"""The files in this folder ship to SageMaker as they are.

Inside a container they run as flat scripts (``python3 preprocess.py``, or ``code/inference.py`` in
the model artifact) and import each other by bare module name, because the folder itself is on
``sys.path`` there. Importing them as ``pipeline_code.container.X`` from the host (CLI, tests) must
resolve those bare imports the same way, so the folder is put on ``sys.path`` here once.
"""

import sys
from pathlib import Path

CONTAINER_CODE_DIR = Path(__file__).resolve().parent

if str(CONTAINER_CODE_DIR) not in sys.path:
    sys.path.append(str(CONTAINER_CODE_DIR))
