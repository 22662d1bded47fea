"""The conditions helper (modelhub.api.conditions): lastTransitionTime moves only when status flips."""

from __future__ import annotations

import datetime as dt

import pytest

from modelhub.api.conditions import format_time, get_condition, is_true, remove_condition, set_condition

T0 = "2025-01-01T00:00:00Z"
T1 = "2025-01-01T00:05:00Z"


def test_new_condition_is_appended_with_now():
    out = set_condition([], "Ready", "False", "Pending", "waiting", 3, T0)
    assert out == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "Pending",
            "message": "waiting",
            "lastTransitionTime": T0,
            "observedGeneration": 3,
        }
    ]


def test_transition_time_unchanged_when_status_unchanged():
    first = set_condition([], "Ready", "False", "Pending", "waiting", 1, T0)
    second = set_condition(first, "Ready", "False", "StillPending", "still waiting", 2, T1)
    cond = get_condition(second, "Ready")
    assert cond["lastTransitionTime"] == T0
    assert cond["reason"] == "StillPending"
    assert cond["message"] == "still waiting"
    assert cond["observedGeneration"] == 2


def test_transition_time_moves_when_status_flips():
    first = set_condition([], "Ready", "False", "Pending", "waiting", 1, T0)
    second = set_condition(first, "Ready", "True", "Serving", "2/2 ready", 1, T1)
    assert get_condition(second, "Ready")["lastTransitionTime"] == T1
    third = set_condition(second, "Ready", "Unknown", "Lost", "?", 1, "2025-01-01T00:09:00Z")
    assert get_condition(third, "Ready")["lastTransitionTime"] == "2025-01-01T00:09:00Z"


def test_input_is_not_modified_and_other_conditions_keep_their_order():
    conds = [
        {
            "type": "SignatureVerified",
            "status": "True",
            "reason": "Verified",
            "message": "",
            "lastTransitionTime": T0,
        },
        {"type": "Ready", "status": "False", "reason": "Pending", "message": "", "lastTransitionTime": T0},
        {"type": "Approved", "status": "True", "reason": "Approved", "message": "", "lastTransitionTime": T0},
    ]
    snapshot = [dict(c) for c in conds]
    out = set_condition(conds, "Ready", "True", "Serving", "ok", 4, T1)
    assert conds == snapshot
    assert [c["type"] for c in out] == ["SignatureVerified", "Ready", "Approved"]
    assert out[0] == conds[0] and out[0] is not conds[0]


def test_duplicates_of_a_type_collapse_to_one():
    conds = [
        {"type": "Ready", "status": "True", "lastTransitionTime": T0},
        {"type": "Ready", "status": "False", "lastTransitionTime": T0},
    ]
    out = set_condition(conds, "Ready", "True", "Serving", "", None, T1)
    assert len(out) == 1
    assert out[0]["lastTransitionTime"] == T0
    assert "observedGeneration" not in out[0]


def test_missing_transition_time_is_filled():
    out = set_condition([{"type": "Ready", "status": "True"}], "Ready", "True", "Serving", "", 1, T1)
    assert out[0]["lastTransitionTime"] == T1


def test_bool_status_and_datetime_now():
    now = dt.datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=dt.UTC)
    out = set_condition(None, "Enforced", True, "Enforced", "done", 1, now)
    assert out[0]["status"] == "True"
    assert out[0]["lastTransitionTime"] == "2025-03-04T05:06:07Z"
    assert format_time(dt.datetime(2025, 3, 4, 7, 6, 7, tzinfo=dt.timezone(dt.timedelta(hours=2)))) == (
        "2025-03-04T05:06:07Z"
    )


def test_invalid_status_is_refused():
    with pytest.raises(ValueError, match="True, False, Unknown"):
        set_condition([], "Ready", "Yes", "X", "", 1, T0)


def test_get_is_true_and_remove():
    conds = set_condition([], "Revoked", "True", "Revoked", "by rvk", 1, T0)
    conds = set_condition(conds, "Ready", "False", "Revoked", "revoked", 1, T0)
    assert get_condition(conds, "Missing") is None
    assert get_condition(None, "Ready") is None
    assert is_true(conds, "Revoked") and not is_true(conds, "Ready") and not is_true(conds, "Missing")
    assert [c["type"] for c in remove_condition(conds, "Revoked")] == ["Ready"]
