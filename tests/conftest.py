"""Shared test setup: every test starts from the same random state."""

import os

import pytest
import torch

try:  # property tests: the same examples on every CI run (locally, Hypothesis explores anew each time)
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, database=None)
    if os.environ.get("CI"):
        settings.load_profile("ci")
except ImportError:
    pass


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def g():
    """The shipped model, loaded once per test module (a module may define its own ``g``)."""
    import mmattn

    return mmattn.Grounder.from_pretrained()
