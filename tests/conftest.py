"""Shared fixtures."""

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real datasets: $VSML_GYM_DATA, else shared/data beside the checkout (see its README.md)."""
    configured = os.environ.get("VSML_GYM_DATA")
    root = Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not root.is_dir():
        pytest.fail(f"real-data folder {root} does not exist: set VSML_GYM_DATA to a folder holding the "
                    f"datasets, or clone the project next to shared/data", pytrace=False)
    return root
