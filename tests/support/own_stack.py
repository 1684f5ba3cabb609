"""A stack of a test module's own: three KRaft nodes, or a secured listener.

Such a stack never is the session's stack (nor a developer's): it runs on free ports
in a temporary state dir and is purged afterwards. Module-scoped fixtures use it, so
only one runs at a time. It needs the local launcher (Java, PostgreSQL).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shopstream.config import Settings
from shopstream.errors import ShopstreamError
from shopstream.stack import LocalStack, StackConfig


@contextlib.contextmanager
def own_stack(brokers: int = 1, secure: bool = False) -> Iterator[LocalStack]:
    state_dir = Path(tempfile.mkdtemp(prefix="shopstream-own-stack-"))
    state_dir.chmod(0o755)  # reachable by the 'postgres' user when we run as root
    cache_dir = Settings.load().shopstream_cache_dir
    config = StackConfig.isolated(
        cache_dir, state_dir, with_postgres=True, brokers=brokers, secure=secure
    )
    local = LocalStack(config)
    try:
        try:
            local.up()
        except ShopstreamError as exc:
            pytest.fail(f"the test's own stack did not start: {exc.message}", pytrace=False)
        yield local
    finally:
        local.purge()
        shutil.rmtree(state_dir, ignore_errors=True)
