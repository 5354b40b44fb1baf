"""A Lambda function's code as it ships: its own modules plus the contract modules they import.

The Lambda runtime puts the asset's root on ``sys.path`` and imports the handler module by name, so a
function's modules import each other by bare name (``from deploy_config import DeployConfig``) and
the project's bottom layer as ``contract.<module>``. The asset is therefore a staged folder: the
``*.py`` files of the function's ``code/`` folder, the modules every function shares (``shared/``:
the logger) and, under ``contract/``, ``__init__.py`` and the modules the function lists. Listed,
not globbed: ``contract/settings.py`` needs pydantic, which the Lambda runtime lacks. Only the
standard library and boto3 are imported, so there is no bundling step (and no Docker).

Staged folders are content-addressed under ``.cache/functions/``, like the job code bundle: every
synth of the same code reuses one folder, and CDK's asset hash changes only when the code does. This
module uses the standard library only, so tests can stage (and import) exactly what ships without
loading the CDK.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

FUNCTIONS_DIR = Path(__file__).resolve().parent
REPO_ROOT = FUNCTIONS_DIR.parents[1]
CONTRACT_DIR = REPO_ROOT / "contract"
STAGING_DIR = REPO_ROOT / ".cache" / "functions"
# Each function's folder under stacks/functions/ holds its construct module and this code folder.
CODE_FOLDER = "code"
CONTRACT_PACKAGE = CONTRACT_DIR.name
# Modules every function carries at its asset's root, beside its own (standard library only).
SHARED_DIR = FUNCTIONS_DIR / "shared"
SHARED_MODULES = ("function_log.py",)


@dataclass(frozen=True)
class FunctionCode:
    """The code of the function in ``stacks/functions/<name>/code`` and the contract modules it carries."""

    name: str
    # File names in contract/ (standard library only); contract/__init__.py is always carried.
    contract_modules: tuple[str, ...]

    @property
    def source_dir(self) -> Path:
        return FUNCTIONS_DIR / self.name / CODE_FOLDER

    @property
    def carried_modules(self) -> tuple[str, ...]:
        """Dotted names of the contract modules the asset holds, ``contract`` itself included."""
        return (CONTRACT_PACKAGE, *(f"{CONTRACT_PACKAGE}.{Path(n).stem}" for n in self.contract_modules))

    def files(self) -> list[tuple[str, Path]]:
        """(path inside the asset, source file) for every file the asset holds, sorted."""
        own = [(path.name, path) for path in self.source_dir.glob("*.py")]
        if not own:
            raise FileNotFoundError(f"{self.source_dir} holds no Python modules")
        carried = [
            (f"{CONTRACT_PACKAGE}/{name}", CONTRACT_DIR / name)
            for name in ("__init__.py", *self.contract_modules)
        ]
        missing = [str(path) for _, path in carried if not path.is_file()]
        if missing:
            raise FileNotFoundError(f"{self.name} lists contract modules that do not exist: {missing}")
        shared = [(name, SHARED_DIR / name) for name in SHARED_MODULES]
        clashing = {name for name, _ in own} & set(SHARED_MODULES)
        if clashing:
            raise ValueError(f"{self.source_dir} has modules named like the shared ones: {sorted(clashing)}")
        return sorted(own + carried + shared)

    def fingerprint(self) -> str:
        """A short hash of the asset's names and bytes."""
        digest = hashlib.sha256()
        for name, path in self.files():
            digest.update(name.encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        return digest.hexdigest()[:16]

    def stage(self, staging_dir: Path = STAGING_DIR) -> Path:
        """The staged asset folder (built once per content); what ``Code.from_asset`` ships."""
        target = staging_dir / f"{self.name}-{self.fingerprint()}"
        if target.is_dir():
            return target
        staging_dir.mkdir(parents=True, exist_ok=True)
        # Build beside the target, then rename: parallel synths never see a half-copied folder.
        building = Path(tempfile.mkdtemp(dir=staging_dir, prefix=f".{self.name}-"))
        try:
            for name, path in self.files():
                destination = building / name
                destination.parent.mkdir(exist_ok=True)
                shutil.copyfile(path, destination)
                destination.chmod(0o644)
            building.chmod(0o755)
            os.replace(building, target)
        except OSError:
            if not target.is_dir():
                raise
            # Another synth staged the same content first; its folder is identical.
        finally:
            if building.exists():
                shutil.rmtree(building)
        return target
