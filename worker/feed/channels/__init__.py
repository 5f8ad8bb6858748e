"""The channel registry: every module of this package that defines ``CHANNEL`` is a channel.

Adding a channel is adding a module here (and its golden file): nothing else names the channels,
not even the images task, which reads each channel's image sizes from here.
"""

from __future__ import annotations

from functools import cache

from worker.common.errors import ConfigError
from worker.common.plugins import discover
from worker.feed.channels.base import Channel, ChannelOptions


@cache
def registry() -> dict[str, type[Channel]]:
    """name → channel class, discovered once from this package's modules."""
    found: dict[str, type[Channel]] = discover(__name__, __path__, "CHANNEL", "channel")
    for name, channel in found.items():
        if not isinstance(getattr(channel, "min_image_size", None), int):
            # The images task sizes every shop's images by these: no channel goes without one.
            raise RuntimeError(f"channel {name} states no min_image_size")
    return found


def get_channel(name: str, *, shop_id: str = "?", options: ChannelOptions | None = None) -> Channel:
    """A fresh instance of the named channel, or exit 65 naming the shop and the known channels."""
    try:
        cls = registry()[name]
    except KeyError:
        known = ", ".join(sorted(registry()))
        raise ConfigError(
            f"shop {shop_id}: channel {name!r} has no module in worker/feed/channels "
            f"(known: {known}); fix the shop's channels list"
        ) from None
    return cls(options)
