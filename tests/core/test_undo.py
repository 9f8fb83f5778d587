"""Whether a change undoes others, by content: the lines each removes and adds, wherever they sit."""

from __future__ import annotations

import pytest

from watcher.core.undo import Delta, added_up, delta_of_diff, undoes

SCALE = {"values.yaml": {"replicaCount: -1": 1, "replicaCount: 1": -1}}
UNSCALE = {"values.yaml": {"replicaCount: -1": -1, "replicaCount: 1": 1}}
TAG = {"values.yaml": {"tag: 2": 1, "tag: 1": -1}}
UNTAG = {"values.yaml": {"tag: 2": -1, "tag: 1": 1}}
NOTES = {"NOTES.md": {"hello": 1}}


@pytest.mark.parametrize(
    ("change", "undone", "expected"),
    [
        (UNSCALE, [SCALE], True),
        (SCALE, [SCALE], False),  # the same change again is no undo
        (NOTES, [SCALE], False),  # "This reverts commit <bad>" on an unrelated file
        (UNSCALE | NOTES, [SCALE], False),  # undoes it, and sneaks in another file
        ({}, [SCALE], False),
        (UNSCALE, [], False),  # nothing named to undo
        ({}, [{}], False),  # a commit that changed nothing: nothing to undo
        ({"values.yaml": {**UNSCALE["values.yaml"], **UNTAG["values.yaml"]}}, [SCALE, TAG], True),  # two at once
        (UNSCALE, [SCALE, TAG], False),  # only one of two
    ],
)
def test_undoes(change: Delta, undone: list[Delta], expected: bool) -> None:
    assert undoes(change, undone) is expected


def test_changes_that_cancel_out_add_up_to_nothing() -> None:
    assert added_up([SCALE, UNSCALE]) == {}


DIFF = """diff --git a/helm/values.yaml b/helm/values.yaml
index 1111111111111111111111111111111111111111..2222222222222222222222222222222222222222 100644
--- a/helm/values.yaml
+++ b/helm/values.yaml
@@ -3 +3 @@ image:
-replicaCount: 1
+replicaCount: -1
@@ -9,0 +10 @@
+--- not a header
--- not a header either
diff --git a/logo.png b/logo.png
index 3333333333333333333333333333333333333333..4444444444444444444444444444444444444444 100644
Binary files a/logo.png and b/logo.png differ
"""


def test_a_diff_becomes_net_lines_per_file_and_blob_ids_for_binaries() -> None:
    assert delta_of_diff(DIFF) == {
        "helm/values.yaml": {
            "replicaCount: 1": -1,
            "replicaCount: -1": 1,
            "--- not a header": 1,
            "-- not a header either": -1,
        },
        "logo.png": {
            "\0blob 3333333333333333333333333333333333333333": -1,
            "\0blob 4444444444444444444444444444444444444444": 1,
        },
    }
