"""A real Redis Cluster for tests (bench/cluster.py), or a skip saying what is missing."""

from __future__ import annotations

import os

import pytest

from bench.cluster import MISSING, LocalCluster, cluster_tools

__all__ = ["LocalCluster", "require_cluster_tools"]


def require_cluster_tools() -> None:
    """Skip (fail under CI=true) when no redis-server 7 is on PATH."""
    if cluster_tools() is None:
        if os.environ.get("CI"):
            pytest.fail(f"{MISSING} in CI")
        pytest.skip(MISSING)
