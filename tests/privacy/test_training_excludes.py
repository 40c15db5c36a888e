"""A consent withdrawal reaches the next training set (issue 17: 'and in the next training set (test)')."""

from __future__ import annotations

from datetime import UTC, datetime

from tenure.privacy.consent import ConsentChange, ConsentStore, consent_path


def test_the_next_training_sets_leave_out_withdrawn_customers(churn_workspace):
    from tenure.training.churn_dataset import build_churn_training_set
    from tenure.training.recommender_pipeline import load_data

    settings = churn_workspace
    before = build_churn_training_set(settings, verify_sample=0)
    events_before = load_data(settings).events
    profiled = list(before["customer_id"].drop_duplicates().iloc[:5])
    personal = list(events_before["customer_id"].drop_duplicates().iloc[-3:])
    at = datetime(2026, 5, 1, tzinfo=UTC)
    store = ConsentStore.from_settings(settings)
    try:
        store.record([ConsentChange(c, "profiling", False, at, "web") for c in profiled]
                     + [ConsentChange(c, "personalization", False, at, "app") for c in personal])
        after = build_churn_training_set(settings, verify_sample=0)
        assert not set(after["customer_id"]) & set(profiled)
        assert len(after) == len(before) - before["customer_id"].isin(profiled).sum()
        events_after = load_data(settings).events
        assert not set(events_after["customer_id"]) & set(personal)
        assert len(events_after) == len(events_before) - events_before["customer_id"].isin(personal).sum()
    finally:  # the workspace is shared by other tests: leave it without withdrawals
        store.close()
        for path in consent_path(settings).parent.glob("consent.sqlite*"):
            path.unlink()
