"""The feature table is the one declaration the extractor, model, explain and decide read."""

from __future__ import annotations

import math

import pytest

from streamproc.detector.catalog import FEATURE_INDEX, FEATURES, N_FEATURES, Feature, signs
from streamproc.detector.events import AccessEvent
from streamproc.detector.features import FeatureExtractor, PrincipalState

EV = AccessEvent("e1", 1_709_546_400_000, "p", "hr.salaries", "EXPORT", 10, 900, "10.0.0.1", True)


def test_names_are_unique_and_indexed() -> None:
    assert len(FEATURE_INDEX) == N_FEATURES == len(FEATURES)
    assert all(FEATURE_INDEX[f.name] == i for i, f in enumerate(FEATURES))


def test_the_extractor_produces_one_value_per_row_of_the_table() -> None:
    row = FeatureExtractor().update(PrincipalState(), EV)
    assert len(row) == N_FEATURES and all(math.isfinite(v) for v in row)


@pytest.mark.parametrize("feat", FEATURES, ids=lambda f: f.name)
def test_every_feature_has_bounds_and_a_text(feat: Feature) -> None:
    assert feat.lo < feat.hi and (not feat.signed or feat.lo < 0 < feat.hi)
    text = feat.text(2.0, EV)
    assert text and feat.name not in text and "{" not in text


def test_signs_partition_the_read_and_credential_features() -> None:
    assert signs("credential") == {"fail_short"}
    assert {"rows_z", "dataset_rare", "domain_rare"} <= signs("read")
    assert not signs("read") & signs("credential")


@pytest.mark.parametrize(
    ("v", "want"),
    [
        (0.3, "under 1 failed access in the last ~10 minutes (older ones decayed)"),
        (0.0, "about 0 failed accesses in the last ~10 minutes"),
        (math.log1p(1), "about 1 failed access in the last ~10 minutes"),
        (math.log1p(12), "about 12 failed accesses in the last ~10 minutes"),
    ],
)
def test_a_decayed_count_below_one_is_not_about_zero(v: float, want: str) -> None:
    assert FEATURES[FEATURE_INDEX["fail_short"]].text(v, EV) == want
