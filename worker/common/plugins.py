"""Plug-in discovery, the one way formats and channels are registered: every module of a package
that defines the named attribute contributes it, keyed by its ``name``; adding a plug-in is adding
a module, and nothing else lists them."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import Any


def discover(package: str, path: Iterable[str], attribute: str, kind: str) -> dict[str, Any]:
    """name → the ``attribute`` of each module of ``package`` (its ``__path__``) that defines it.

    Two modules registering one name is a bug of the tree, said at once with ``kind`` in the message.
    """
    found: dict[str, Any] = {}
    for info in pkgutil.iter_modules(list(path)):
        module = importlib.import_module(f"{package}.{info.name}")
        plugin = getattr(module, attribute, None)
        if plugin is None:
            continue
        if plugin.name in found:
            raise RuntimeError(f"two {kind} modules register the name {plugin.name!r}")
        found[plugin.name] = plugin
    return found
