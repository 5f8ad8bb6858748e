"""Logging put back after a test that runs ``catalog-submit``'s main() or the Lambda handler: both
configure logging for their process, onto streams that pytest closes after the test."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture
def restore_logging() -> Iterator[None]:
    handlers = logging.getLogger().handlers[:]
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers[:] = handlers
