"""A recommender needs at least two items to choose among; fewer is a clear error, not NaN factors."""

from __future__ import annotations

import pandas as pd
import pytest

from tenure.training.recommender_pipeline import NothingToRecommend, RecommenderData, require_items


def _data(items: list[str] | None, event_items: list[str]) -> RecommenderData:
    events = pd.DataFrame({"customer_id": [f"c{i}" for i in range(len(event_items))], "item_id": event_items})
    catalogue = None if items is None else pd.DataFrame({"item_id": items})
    return RecommenderData(events, None, catalogue, "test", None, {"purchase": 1.0})


def test_one_item_is_nothing_to_recommend() -> None:
    with pytest.raises(NothingToRecommend, match="1 item"):
        require_items(_data(["only"], ["only", "only"]))
    with pytest.raises(NothingToRecommend, match="0 item"):
        require_items(_data(None, []))


def test_the_catalogue_counts_else_the_events_items() -> None:
    assert require_items(_data(["a", "b", "c"], ["a"])) == 3
    assert require_items(_data(None, ["a", "b", None])) == 2
