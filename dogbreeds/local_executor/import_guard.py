"""Local runs import only what the job's container image has.

Locally, job code (``pipeline_code/container``, unpacked from the code bundle, and a model
artifact's ``code/``) runs in this project's virtual environment, which holds packages that no
SageMaker image has. Without a guard, a job can import one of them, pass every local test, and fail
on AWS (where the Train step runs with network isolation, so nothing can be pip-installed).

The rule (implemented, standard library only, in ``import_guard_site/dogbreeds_import_hook.py``):
an import made *by job code* of a top-level module succeeds only if the module is in the standard
library of the image's Python, is listed for that image in ``contract/container_images.py``,
or is the job's own code (found in the importing file's own root folder: the bundle, ``code/``).
Anything else raises ``ModuleNotFoundError`` (an ``ImportError``, so ``try: ... except
ImportError:`` fallbacks keep working) naming the module, the image and what to do. This project's
own packages (``stacks``, ``dogbreeds``, ``pipeline_code`` ...) are refused to job code even though
they are importable locally; ``contract`` is allowed, as the bundle carries its standard-library
modules (``pipeline_code/code_bundle.py`` lists them). Imports made by the standard library,
site-packages (torch importing sympy) or the project's host code are never refused; neither is code
without a file (``python -c``).

* ``guard_environment(image_uri, environment)``: the environment for a job subprocess. It puts
  ``import_guard_site/`` first on PYTHONPATH, whose ``sitecustomize.py`` installs the rule at
  interpreter start-up, in the job process and in every Python process it starts (torchrun workers).
  Job code there is any file outside the standard library, site-packages and this project's
  checkout, except that ``pipeline_code/container`` (the bundle's source) is job code too; the rest
  of the project is host code (a local wrapper may run in the job's process). The interpreter must
  honour PYTHONPATH and import ``site`` (no ``-I``, ``-E`` or ``-S``); a child started with a
  PYTHONPATH that drops the guard's folder, or a fresh environment, runs unguarded.
* ``install_import_guard(image_uri, code_dir)``: the same rule in this process, for code under
  ``code_dir`` only (local serving loads the artifact's ``code/inference.py`` in-process). Returns a
  handle whose ``uninstall()`` removes it again.

Images are matched by repository name and tag (any registry; a tag or one of the image's published
aliases). An image that is not in the inventory is refused with ``UnknownImageError``: what it holds
is unknown, so no honest guard can be set up; add it to ``contract/container_images.py``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from contract.container_images import IMAGES, ContainerImage, find_image
from dogbreeds.local_executor.import_guard_site import dogbreeds_import_hook as hook
from pipeline_code.code_bundle import CONTAINER_CODE_DIR, SHIPPED_PACKAGES

GUARD_SITE_DIR = Path(hook.HOOK_DIR)
ENV_VAR = hook.ENV_VAR
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
# Never project code, whatever the folder holds (tools' folders, not importable packages).
_NOT_PROJECT_CODE = {"node_modules", "cdk.out", "docs"}


class UnknownImageError(ValueError):
    """The image is not in the inventory, so what it may import is unknown."""


def image_for(image_uri: str) -> ContainerImage:
    """The inventory entry of ``image_uri``, or UnknownImageError naming the known images."""
    image = find_image(image_uri)
    if image is None:
        known = "; ".join(
            f"{name} (also tagged {', '.join(image.tag_aliases)})" for name, image in sorted(IMAGES.items())
        )
        raise UnknownImageError(
            f"no import guard for image {image_uri!r}: it is not in the inventory of "
            f"contract/container_images.py, so what it holds is unknown. Known images: {known}"
        )
    return image


@functools.cache
def project_modules(root: Path = REPOSITORY_ROOT) -> frozenset[str]:
    """This project's top-level importable names: packages, namespace folders and modules at its root."""
    names = set()
    for path in root.iterdir():
        name = path.stem if path.suffix == ".py" else path.name
        if not name.isidentifier() or name.startswith(("_", ".")) or name in _NOT_PROJECT_CODE:
            continue
        if (path.is_file() and path.suffix == ".py") or (path.is_dir() and any(path.rglob("*.py"))):
            names.add(name)
    return frozenset(names)


def _rule(image_uri: str, code_dir: Path | None = None) -> hook.Rule:
    image = image_for(image_uri)
    return hook.Rule(
        image=image.name,
        modules=image.modules,
        stdlib_removed=image.stdlib_removed(),
        project=project_modules(),
        shipped=SHIPPED_PACKAGES,
        code_dir=None if code_dir is None else os.path.realpath(code_dir),
        project_root=os.path.realpath(REPOSITORY_ROOT),
        project_job_dir=os.path.realpath(CONTAINER_CODE_DIR),
    )


def guard_environment(image_uri: str, environment: Mapping[str, str]) -> dict[str, str]:
    """``environment`` for a job subprocess running in ``image_uri``, with the import guard on.

    A copy: PYTHONPATH gets the guard's site folder first (once), DOGBREEDS_IMPORT_GUARD the rule.
    Raises UnknownImageError for an image that is not in the inventory.
    """
    rule = _rule(image_uri)
    guarded = dict(environment)
    site_dir = str(GUARD_SITE_DIR)
    rest = [p for p in guarded.get("PYTHONPATH", "").split(os.pathsep) if p and p != site_dir]
    guarded["PYTHONPATH"] = os.pathsep.join([site_dir, *rest])
    guarded[ENV_VAR] = rule.to_json()
    return guarded


@dataclass
class InstalledImportGuard:
    """A rule installed in this process; ``uninstall()`` takes it out again."""

    image: str
    code_dir: Path
    _rule: hook.Rule

    def uninstall(self) -> None:
        hook.guard().remove(self._rule)


def install_import_guard(image_uri: str, code_dir: Path) -> InstalledImportGuard:
    """Guard the imports made by code under ``code_dir`` in this process, for ``image_uri``.

    Code elsewhere in the process (this project, site-packages) is not affected. Several calls add
    several rules; a file is judged by the rule of the innermost ``code_dir`` holding it.
    """
    rule = _rule(image_uri, Path(code_dir))
    hook.guard().add(rule)
    return InstalledImportGuard(image=rule.image, code_dir=Path(code_dir), _rule=rule)
