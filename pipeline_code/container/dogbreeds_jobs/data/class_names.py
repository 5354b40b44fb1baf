"""One way to turn a dataset's class folder name into a breed name, used everywhere.

Datasets name class folders the Stanford Dogs way (``n02085620-Chihuahua``), the Udacity way
(``001.Affenpinscher``) or plainly (``golden_retriever``). Every part of the system (preprocess,
training's classes.json, predictions, ground truth, reports) uses the normalised form, so a breed
is one string end to end.
"""

from __future__ import annotations

import re

_STANFORD = re.compile(r"^n\d{8}-(?P<name>.+)$")
_UDACITY = re.compile(r"^\d{1,4}\.(?P<name>.+)$")
_SEPARATORS = re.compile(r"[\s_\-]+")


def normalise_class_name(folder_name: str) -> str:
    """``n02085620-Chihuahua`` -> ``chihuahua``; ``001.Affenpinscher`` -> ``affenpinscher``;
    ``Golden Retriever`` / ``golden-retriever`` -> ``golden_retriever``."""
    name = folder_name.strip()
    for pattern in (_STANFORD, _UDACITY):
        match = pattern.match(name)
        if match:
            name = match.group("name")
            break
    normalised = _SEPARATORS.sub("_", name).strip("_").lower()
    if not normalised:
        raise ValueError(f"class folder name {folder_name!r} has no breed name in it")
    return normalised
