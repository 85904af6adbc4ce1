"""Shared test helpers: where ../shared is (it is absent on a fresh clone)."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    env = os.environ.get("CALLSCOPE_SHARED")
    return Path(env) if env else ROOT.parent / "shared"


CONFORMANCE = shared_dir() / "conformance" / "component-model" / "test"


def need_conformance():
    if not CONFORMANCE.is_dir():
        pytest.skip(f"the component-model reference tests are not at {CONFORMANCE} "
                    "(../shared is not beside this checkout)")
    return CONFORMANCE
