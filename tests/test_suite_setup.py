"""The test suite's own set-up (tests/conftest.py): running it writes nothing into the checkout."""
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]


def test_hypothesis_keeps_its_example_database_out_of_the_checkout():
    hypothesis = pytest.importorskip("hypothesis")
    database = hypothesis.settings.default.database
    # Hypothesis's own profile on CI (CI=true) keeps no database at all; elsewhere it must lie outside the checkout
    where = None if database is None else Path(database.path).resolve()
    assert where is None or CHECKOUT not in where.parents, f"Hypothesis writes its examples into the checkout: {where}"
