"""Shared test set-up: hypothesis profiles, the array backend, skipping what needs data not shipped.

The suite runs on the active backend (``TINYCNN_BACKEND=cupy make test`` runs it on
a GPU); ``make gradcheck`` selects the "gradcheck" profile with many more examples,
``make fuzz`` the "fuzz" profile for the hostile-input tests (marked ``fuzz``).
"""
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from tinycnn import backend

settings.register_profile("default", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("gradcheck", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
# make gpu-check: a few examples each, so the whole suite fits a lent GPU's minutes (the
# gradient arithmetic is the backend's own kernels either way; the agreement test
# compares those kernels with NumPy's at full size)
settings.register_profile("gpu", max_examples=5, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
settings.load_profile(PROFILE)


def fuzz_settings(examples):
    """A fuzz test's settings: ``examples`` examples in make test, the fuzz profile's many in make fuzz."""
    return settings() if PROFILE == "fuzz" else settings(max_examples=examples)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def require_cifar10():
    """Skip the test, naming the command that fetches it, unless CIFAR-10 is here
    (data/ or $TINYCNN_DATA_DIR): the one input a fresh clone does not have."""
    from tinycnn.io.data import DataError, find_cifar10
    try:
        find_cifar10()
    except DataError:
        pytest.skip("needs CIFAR-10, which the repository does not ship: `make data` downloads it "
                    "(or set TINYCNN_DATA_DIR)")


def image_file(name):
    """The path of a sample image (images/, $TINYCNN_IMAGES_DIR), or skip the test naming
    the command that fetches it."""
    from vis.cli import find_image
    try:
        return find_image(name)
    except FileNotFoundError as e:
        pytest.skip(f"needs {name}: {str(e).split('; ')[-1]}")


def on_device(a, dtype=None):
    """A NumPy array moved to the active backend."""
    return backend.asarray(a, dtype)
