"""Suite-wide settings: hypothesis profiles and the thread count every test starts from.

Thread count: by default the suite runs with alcore's default (the cores this process may
use), so ``taskset -c 0 pytest tests`` runs it on one thread. ``ALCORE_TEST_THREADS=4`` (or
``pytest --alcore-threads 4``) sets the count at session start instead, which runs the
parallel kernels with more chunks than cores on a small machine. Whatever a test sets,
the count is restored after it, so no test sees another test's setting.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

# The session-scoped ``label_studio`` fixture: a real Label Studio server (tests that use it
# start it; skipped when label-studio is not installed, unless CI is set).
from labelstudio_server import label_studio  # noqa: F401

import alcore

settings.register_profile(
    "default", deadline=None, max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# CI: the same examples on every run (a failure reproduces), 80 of them: with the sanitizer
# passes over the same files, 120 kept CI above its 20-minute aim; local runs draw 60 new
# ones each time, so the examples tried keep growing.
settings.register_profile(
    "ci", deadline=None, max_examples=80, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("ci" if os.environ.get("CI") else "default")

THREADS_ENV = "ALCORE_TEST_THREADS"


def pytest_addoption(parser):
    parser.addoption(
        "--alcore-threads", type=int, default=None,
        help=f"alcore.set_num_threads(n) at session start (default: ${THREADS_ENV}, else "
             f"alcore's own default, the CPU affinity)",
    )


def pytest_configure(config):
    threads = config.getoption("--alcore-threads")
    if threads is None and os.environ.get(THREADS_ENV):
        threads = int(os.environ[THREADS_ENV])
    if threads is not None:
        alcore.set_num_threads(threads)


def pytest_report_header(config):
    return f"alcore threads: {alcore.get_num_threads()} (affinity {len(os.sched_getaffinity(0))})"


@pytest.fixture(autouse=True)
def _restore_num_threads():
    """Give every test the session's thread count back, whatever the test set."""
    before = alcore.get_num_threads()
    yield
    alcore.set_num_threads(before)
