"""Shared fixtures: the real config.json files the zoo was read from."""

from __future__ import annotations

from pathlib import Path

import pytest

from estimator.specs import ModelSpec
from estimator.zoo import load_spec

CONFIGS = Path(__file__).parent / "data" / "hf_configs"
ZOO_CONFIGS = sorted(CONFIGS.glob("*.json"))
EXTRA_CONFIGS = sorted((CONFIGS / "extra").glob("*.json"))


@pytest.fixture(scope="session")
def llama3_70b() -> ModelSpec:
    return load_spec("llama3-70b")
