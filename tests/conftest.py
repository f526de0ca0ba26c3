"""Shared fixtures. Real IBL recordings are found through ``MTM_REAL_DATA`` (see mtm.data.sources)."""

import os

import pytest

# Chapters and CLI runs inside the tests use the small settings.
os.environ.setdefault("MTM_SMOKE", "1")


@pytest.fixture(scope="session")
def real_data():
    """Path of the real-data folder, or skip the test with the reason when it is absent."""
    from mtm.data import real_data_dir

    path = real_data_dir()
    if path is None:
        pytest.skip("real IBL recordings not found: set MTM_REAL_DATA to the folder holding "
                    "ibl_brainbox_fixtures/ (CI has them at ../shared/data/real)")
    return path
