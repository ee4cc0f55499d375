"""A process that runs studies collects less often: the trialpipe command and Dagster's run workers."""

from __future__ import annotations

import gc

import pytest
from dagster import build_init_resource_context

from pipelines.core.process import GC_THRESHOLD, collect_less
from pipelines.orchestration.resources import TrialpipeResource


@pytest.fixture
def python_default_thresholds():
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_collect_less_raises_the_thresholds_and_never_lowers_one(python_default_thresholds):
    collect_less()
    assert gc.get_threshold() == GC_THRESHOLD == (10_000, 10, 10)
    gc.set_threshold(50_000, 5, 20)
    collect_less()
    assert gc.get_threshold() == (50_000, 10, 20)


def test_a_run_worker_collects_less_from_its_resource_setup(python_default_thresholds):
    """A run the daemon launches executes in a Dagster run worker, not in the trialpipe command."""
    TrialpipeResource().setup_for_execution(build_init_resource_context())
    assert gc.get_threshold() == GC_THRESHOLD
