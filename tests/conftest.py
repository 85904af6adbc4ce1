"""Shared test helpers: where ../shared is (it is absent on a fresh clone),
and bench/run.py loaded as a module (the `bench` fixture)."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "run.py"


def shared_dir() -> Path:
    env = os.environ.get("CALLSCOPE_SHARED")
    return Path(env) if env else ROOT.parent / "shared"


CONFORMANCE = shared_dir() / "conformance" / "component-model" / "test"


def need_conformance():
    if not CONFORMANCE.is_dir():
        pytest.skip(f"the component-model reference tests are not at {CONFORMANCE} "
                    "(../shared is not beside this checkout)")
    return CONFORMANCE


@pytest.fixture(scope="module")
def bench():
    """bench/run.py as a module (loaded once a session; sys.path as it was),
    for the tests that drive its guests; test_bench_smoke has its own."""
    name = "callscope_bench_run"
    if name in sys.modules:
        return sys.modules[name]
    saved = list(sys.path)
    spec = importlib.util.spec_from_file_location(name, BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path[:] = saved
    return mod
