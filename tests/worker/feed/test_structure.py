"""The feed's one-home rules: no import circle between channels/ and the rest of feed/, and every
channel states its image sizes, which the images task reads through the registry."""

from __future__ import annotations

import ast
from datetime import date
from pathlib import Path

from worker.feed.channels import registry
from worker.feed.channels.base import ImageSize
from worker.images.process import channel_rules

FEED = Path(__file__).resolve().parents[3] / "worker" / "feed"


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_channels_import_only_the_row_and_the_rules_of_the_rest_of_feed() -> None:
    for path in sorted((FEED / "channels").glob("*.py")):
        outside = {n for n in imported(path)
                   if n.startswith("worker.feed.") and not n.startswith("worker.feed.channels")}
        assert outside <= {"worker.feed.product", "worker.feed.rules"}, (path.name, outside)
    for name in ("product.py", "rules.py", "stream.py"):
        assert not {n for n in imported(FEED / name) if n.startswith("worker.feed.channels")}, name
    assert not (FEED / "lines.py").exists()


def test_every_channel_states_its_image_sizes_and_the_images_task_uses_them() -> None:
    day = date(2026, 12, 1)
    rules = channel_rules(apparel=False, on=day)
    assert set(rules) == set(registry())
    for name, channel in registry().items():
        size = channel.image_size(apparel=False, on=day)
        assert isinstance(size, ImageSize) and size.min_width >= 100
        rule = rules[name]
        assert (rule.min_width, rule.min_height, rule.max_width, rule.max_height) == (
            size.min_width, size.min_height, size.max_width, size.max_height
        )
    assert channel_rules(apparel=True, on=day)["google"].min_width == 250
    assert channel_rules(apparel=True, on=day)["meta"].min_width == 500
    assert channel_rules(apparel=False, on=date(2027, 1, 31))["google_tsv"].min_width == 500
    assert rules["naver"].max_width == 4000
