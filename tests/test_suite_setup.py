"""The test suite's own set-up (tests/conftest.py): running it writes nothing into the checkout."""
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]


def test_hypothesis_keeps_its_example_database_out_of_the_checkout():
    hypothesis = pytest.importorskip("hypothesis")
    database = Path(hypothesis.settings.default.database.path).resolve()
    assert CHECKOUT not in database.parents, f"Hypothesis writes its examples into the checkout: {database}"
