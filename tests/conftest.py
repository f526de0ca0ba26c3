"""Shared fixtures. Real IBL recordings are installed with the package; ``MTM_REAL_DATA`` names
another folder of them (see mtm.data.sources)."""

import os

import pytest

# Chapters and CLI runs inside the tests use the small settings.
os.environ.setdefault("MTM_SMOKE", "1")


@pytest.fixture(scope="session")
def real_data():
    """Path of the real-data folder (the package's own copy unless MTM_REAL_DATA names another)."""
    from mtm.data import real_data_dir

    return real_data_dir(required=True)
