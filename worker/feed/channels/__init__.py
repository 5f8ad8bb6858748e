"""The channel registry: every module of this package that defines ``CHANNEL`` is a channel.

Adding a channel is adding a module here (and its golden file): nothing else names the channels.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from worker.common.errors import ConfigError
from worker.feed.channels.base import Channel


@cache
def registry() -> dict[str, type[Channel]]:
    """name → channel class, discovered once from this package's modules."""
    found: dict[str, type[Channel]] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        channel = getattr(module, "CHANNEL", None)
        if channel is None:
            continue
        if channel.name in found:
            raise RuntimeError(f"two channel modules register the name {channel.name!r}")
        found[channel.name] = channel
    return found


def get_channel(name: str, *, shop_id: str = "?") -> Channel:
    """A fresh instance of the named channel, or exit 65 naming the shop and the known channels."""
    try:
        return registry()[name]()
    except KeyError:
        known = ", ".join(sorted(registry()))
        raise ConfigError(
            f"shop {shop_id}: channel {name!r} has no module in worker/feed/channels "
            f"(known: {known}); fix the shop's channels list"
        ) from None
