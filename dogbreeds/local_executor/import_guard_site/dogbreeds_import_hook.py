"""The import hook behind ``dogbreeds.local_executor.import_guard``: standard library only.

It runs inside job processes (loaded by ``sitecustomize.py`` beside it, before any job code) and
inside the host process (``install_import_guard``), so it imports nothing of the project and nothing
outside the standard library.

Rule: an import *made by job code* of a top-level module is allowed when the module is in the
standard library of the image's Python, is provided by the image, or is part of the job's own code
(found in the importing file's own root folder: the unpacked bundle, a model artifact's ``code/``);
anything else raises ``ModuleNotFoundError`` (an ``ImportError``) that names the module, the image
and what to do. The importer is the nearest Python frame on the stack that is not the import
machinery (``importlib``) or this hook; it is job code when its file lies outside the standard
library, site-packages and this project's checkout (except ``pipeline_code/container``, the
bundle's source), and, in the host process, under a registered code folder. Imports made by the
standard library, site-packages or the project's host code (torch importing sympy or triton, a
local wrapper) and by code without a file (``python -c``, generated code) are never refused.
Modules of this project that are not job code (``stacks``, ``dogbreeds``, ``pipeline_code`` ...)
are refused to job code even when found.

Imports are checked where they happen: ``builtins.__import__`` (every ``import`` statement, also of
modules already loaded), ``importlib.import_module`` and a ``sys.meta_path`` finder (imports from C,
e.g. unpickling). Relative imports stay inside a package and are not checked.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.machinery
import json
import os
import site
import sys
import sysconfig
import threading
from dataclasses import dataclass

ENV_VAR = "DOGBREEDS_IMPORT_GUARD"
HOOK_DIR = os.path.dirname(os.path.realpath(__file__))

# Host standard library; the names the image's Python lost are subtracted per rule.
_HOST_STDLIB = frozenset(sys.stdlib_module_names) | frozenset(sys.builtin_module_names) | {"__main__"}
# Files torch writes and imports itself (inductor and triton caches): not job code.
_GENERATED_MARKERS = (f"{os.sep}torchinductor_", f"{os.sep}.triton{os.sep}")

_SKIP, _ALLOW, _JOB = "skip", "allow", "job"
# Modules whose frames stand between an import and its importer.
_MACHINERY = frozenset({"importlib", "_frozen_importlib", "_frozen_importlib_external"})


@dataclass(frozen=True)
class Rule:
    """What job code may import: one image, for one code folder (or any job file when None)."""

    image: str  # repository:tag, for messages
    modules: frozenset[str]  # top-level modules the image provides beyond the standard library
    stdlib_removed: frozenset[str]  # host standard-library modules the image's Python lacks
    project: frozenset[str]  # this project's top-level packages and modules: never job code
    # ... except these, which the code bundle carries (the bottom layer's standard-library modules)
    shipped: frozenset[str] = frozenset()
    code_dir: str | None = None  # realpath; None: every file outside the libraries is job code
    # This project's checkout: its files are host code (a local wrapper may run in the job's
    # process), except those under project_job_dir (pipeline_code/container: the bundle's source).
    project_root: str | None = None
    project_job_dir: str | None = None

    @classmethod
    def from_json(cls, text: str) -> Rule:
        data = json.loads(text)
        return cls(
            image=str(data["image"]),
            modules=frozenset(data["modules"]),
            stdlib_removed=frozenset(data["stdlib_removed"]),
            project=frozenset(data["project"]),
            shipped=frozenset(data.get("shipped", ())),
            code_dir=data.get("code_dir"),
            project_root=data.get("project_root"),
            project_job_dir=data.get("project_job_dir"),
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "image": self.image,
                "modules": sorted(self.modules),
                "stdlib_removed": sorted(self.stdlib_removed),
                "project": sorted(self.project),
                "shipped": sorted(self.shipped),
                "code_dir": self.code_dir,
                "project_root": self.project_root,
                "project_job_dir": self.project_job_dir,
            },
            sort_keys=True,
        )

    def is_host_code(self, real: str) -> bool:
        """A file of this project's checkout outside the container code: not job code."""
        return (
            self.project_root is not None
            and _under(real, self.project_root)
            and not (self.project_job_dir is not None and _under(real, self.project_job_dir))
        )

    def allows(self, top: str) -> bool:
        return (top in _HOST_STDLIB and top not in self.stdlib_removed) or top in self.modules


def _under(real: str, folder: str) -> bool:
    return real.startswith(os.path.join(folder, ""))


def _real_dir(path: str) -> str:
    return os.path.join(os.path.realpath(path), "")  # trailing separator: prefix tests are exact


def _library_dirs() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(site-packages folders, standard-library folders) of this interpreter, as realpaths."""
    paths = sysconfig.get_paths()
    sites = {paths[key] for key in ("purelib", "platlib") if key in paths}
    if hasattr(site, "getsitepackages"):  # old virtualenv site.py lacks it
        sites.update(site.getsitepackages())
    sites.add(site.getusersitepackages())
    library_names = ("site-packages", "dist-packages")
    sites.update(p for p in sys.path if os.path.basename(p.rstrip(os.sep)) in library_names)
    stdlib = {paths[key] for key in ("stdlib", "platstdlib") if key in paths}
    return (
        tuple(sorted({_real_dir(p) for p in sites if p})),
        tuple(sorted({_real_dir(p) for p in stdlib if p})),
    )


class ImportGuard:
    """The process-wide hook; rules are added and removed, the hooks installed once."""

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self._lock = threading.RLock()
        self._busy = threading.local()
        self._frames: dict[tuple[str, str], tuple[str, Rule | None, str | None]] = {}
        self._own: dict[tuple[str, str], bool] = {}
        self._fast: frozenset[str] = frozenset()
        self._site_dirs, self._stdlib_dirs = _library_dirs()
        self._original_import = None
        self._original_import_module = None

    # ---- rules ----
    def add(self, rule: Rule) -> None:
        with self._lock:
            self.rules.append(rule)
            self._changed()
            self._install()

    def remove(self, rule: Rule) -> None:
        with self._lock:
            if rule in self.rules:
                self.rules.remove(rule)
            self._changed()
            if not self.rules:
                self._uninstall()

    def _changed(self) -> None:
        self._frames.clear()
        if not self.rules:
            self._fast = frozenset()
            return
        # Names every rule allows need no look at the stack.
        fast = None
        for rule in self.rules:
            allowed = (_HOST_STDLIB - rule.stdlib_removed) | rule.modules
            fast = allowed if fast is None else fast & allowed
        self._fast = frozenset(fast or ())

    # ---- hooks ----
    def _install(self) -> None:
        if self._original_import is not None:
            return
        self._original_import = builtins.__import__
        self._original_import_module = importlib.import_module
        original_import, original_import_module = self._original_import, self._original_import_module
        guard = self

        def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
            if level == 0 and name:
                top = name.partition(".")[0]
                if top not in guard._fast:
                    guard.check(top, sys._getframe(1))
            return original_import(name, globals, locals, fromlist, level)

        def guarded_import_module(name, package=None):
            if name and not name.startswith("."):
                top = name.partition(".")[0]
                if top not in guard._fast:
                    guard.check(top, sys._getframe(1))
            return original_import_module(name, package)

        guarded_import_module.__doc__ = original_import_module.__doc__
        self._guarded_import = guarded_import
        self._guarded_import_module = guarded_import_module
        builtins.__import__ = guarded_import
        importlib.import_module = guarded_import_module
        sys.meta_path.insert(0, self)

    def _uninstall(self) -> None:
        if self._original_import is None:
            return
        if builtins.__import__ is self._guarded_import:
            builtins.__import__ = self._original_import
        if importlib.import_module is self._guarded_import_module:
            importlib.import_module = self._original_import_module
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        self._original_import = self._original_import_module = None

    # The meta path finder: sees imports of modules not loaded yet, whoever asked for them.
    def find_spec(self, fullname, path=None, target=None):
        if path is None and fullname not in self._fast:
            self.check(fullname, sys._getframe(1))
        return None

    def invalidate_caches(self) -> None:
        self._own.clear()

    # ---- the rule ----
    def check(self, top: str, frame) -> None:
        if getattr(self._busy, "on", False):
            return
        self._busy.on = True
        try:
            refusal = self._refusal(top, frame)
        finally:
            self._busy.on = False
        if refusal is not None:
            raise ModuleNotFoundError(refusal, name=top)

    def _refusal(self, top: str, frame) -> str | None:
        while frame is not None:
            kind, rule, root = self._classify(frame)
            if kind == _ALLOW:
                return None
            if kind == _JOB:
                return self._judge(top, rule, root, frame)
            frame = frame.f_back
        return None

    def _classify(self, frame) -> tuple[str, Rule | None, str | None]:
        namespace = frame.f_globals
        file = namespace.get("__file__")
        spec = namespace.get("__spec__")
        name = getattr(spec, "name", None) or namespace.get("__name__") or ""
        key = (file if isinstance(file, str) else "", name)
        found = self._frames.get(key)
        if found is None:
            found = self._frames[key] = self._classify_file(key[0], name)
        return found

    def _classify_file(self, file: str, name: str) -> tuple[str, Rule | None, str | None]:
        # The import machinery (importlib, frozen or not) and this hook are skipped: the importer
        # is whoever called them. Any other standard-library or site-packages code is the importer
        # itself, and is never refused; so is code without a file (python -c, generated code).
        machinery = name.partition(".")[0] in _MACHINERY
        if not file or file.startswith("<"):
            return (_SKIP, None, None) if machinery else (_ALLOW, None, None)
        real = os.path.realpath(file)
        if os.path.dirname(real) == HOOK_DIR:
            return _SKIP, None, None
        if real.startswith(self._site_dirs) or any(m in real for m in _GENERATED_MARKERS):
            return _ALLOW, None, None
        if real.startswith(self._stdlib_dirs):
            return (_SKIP, None, None) if machinery else (_ALLOW, None, None)
        rule = self._rule_for(real)
        if rule is None or rule.is_host_code(real):
            return _ALLOW, None, None
        return _JOB, rule, _code_root(real, name)

    def _rule_for(self, real: str) -> Rule | None:
        best, best_length = None, -1
        for rule in self.rules:
            if rule.code_dir is None:
                length = 0
            elif _under(real, rule.code_dir):
                length = len(rule.code_dir)
            else:
                continue
            if length > best_length:
                best, best_length = rule, length
        return best

    def _judge(self, top: str, rule: Rule, root: str, frame) -> str | None:
        if rule.allows(top):
            return None
        importer = frame.f_globals.get("__file__") or root
        advice = (
            "Job code may import the standard library, its own modules and what its image holds "
            "(the inventory in contract/container_images.py). Vendor what it needs into "
            "pipeline_code/container, the code bundle (as dogbreeds_jobs/vendor/ does for "
            "efficientnet_lite_pytorch), or do without it."
        )
        if top in rule.project and top not in rule.shipped:
            return (
                f"import of {top!r} refused by the local import guard: {importer} is job code for "
                f"{rule.image}, and {top!r} is this project's own package, not part of the code "
                f"bundle, so the container does not have it. {advice}"
            )
        if self._is_own(root, top):
            return None
        if top in rule.stdlib_removed:
            return (
                f"import of {top!r} refused by the local import guard: {importer} is job code for "
                f"{rule.image}, whose Python no longer has {top!r} in its standard library. {advice}"
            )
        return (
            f"import of {top!r} refused by the local import guard: {importer} is job code for "
            f"{rule.image}, which does not provide {top!r} (it is installed only locally, if at "
            f"all). {advice}"
        )

    def _is_own(self, root: str, top: str) -> bool:
        key = (root, top)
        own = self._own.get(key)
        if own is None:
            try:
                own = importlib.machinery.PathFinder.find_spec(top, [root]) is not None
            except (ImportError, ValueError, OSError):
                own = False
            self._own[key] = own
        return own


def _code_root(real_file: str, module_name: str) -> str:
    """The folder on sys.path that ``module_name`` was imported from (where its siblings live)."""
    folder = os.path.dirname(real_file)
    parts = module_name.split(".") if module_name else ["__main__"]
    up = len(parts) - 1 + (1 if os.path.basename(real_file).startswith("__init__.") else 0)
    for _ in range(up):
        folder = os.path.dirname(folder)
    return folder


_GUARD: ImportGuard | None = None
_GUARD_LOCK = threading.Lock()


def guard() -> ImportGuard:
    """This process's guard (made on first use; hooks only while it has rules)."""
    global _GUARD
    with _GUARD_LOCK:
        if _GUARD is None:
            _GUARD = ImportGuard()
        return _GUARD


def install_from_environment(environ=os.environ) -> Rule | None:
    """Install the rule that ``ENV_VAR`` carries (set by ``guard_environment``); None if unset."""
    text = environ.get(ENV_VAR)
    if not text:
        return None
    rule = Rule.from_json(text)
    guard().add(rule)
    return rule
