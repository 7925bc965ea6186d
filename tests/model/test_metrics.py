"""Segmentation metrics (geoseg.model.metrics): confusion matrix and scores.

Oracles: confusion matrices and scores counted by hand on tiny examples (ignored pixels, a class
absent from both maps, a class only predicted), and a plain Python pair count on random maps.
"""

from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from geoseg.model.metrics import confusion_matrix, scores


def test_metrics_match_a_hand_computed_confusion_matrix():
    ref = np.array([0, 0, 1, 1, 1, 2, 3, 255])
    pred = np.array([0, 1, 1, 1, 0, 2, 2, 3])
    cm = confusion_matrix(ref, pred, 4)
    assert cm.tolist() == [[1, 1, 0, 0], [1, 2, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0]]
    s = scores(cm, ["other", "forest", "water", "urban"])
    assert s["per_class"]["other"] == {"iou": round(1 / 3, 4), "precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert s["per_class"]["forest"]["iou"] == 0.5 and s["per_class"]["water"]["iou"] == 0.5
    assert s["per_class"]["urban"] == {"iou": 0.0, "precision": None, "recall": 0.0, "f1": None, "support": 1}
    assert s["miou"] == round((1 / 3 + 0.5 + 0.5 + 0.0) / 4, 4) and s["overall_accuracy"] == round(4 / 7, 4)


def test_ignored_pixels_and_a_class_absent_from_both_maps():
    """255 on either side is skipped; class 3 is in neither map: no scores, and left out of the mIoU."""
    ref = np.array([0, 0, 1, 1, 2, 255, 1, 0])
    pred = np.array([0, 1, 1, 255, 2, 2, 1, 0])
    # kept pairs (ref, pred): (0,0) (0,1) (1,1) (2,2) (1,1) (0,0)
    cm = confusion_matrix(ref, pred, 4)
    assert cm.tolist() == [[2, 1, 0, 0], [0, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    s = scores(cm, ["other", "forest", "water", "urban"])
    assert s["per_class"]["urban"] == {"iou": None, "precision": None, "recall": None, "f1": None, "support": 0}
    # other: tp 2, 3 in ref, 2 predicted; forest: tp 2, 2 in ref, 3 predicted; water: 1 of 1
    assert s["per_class"]["other"] == {"iou": round(2 / 3, 4), "precision": 1.0, "recall": round(2 / 3, 4),
                                       "f1": 0.8, "support": 3}
    assert s["per_class"]["forest"] == {"iou": round(2 / 3, 4), "precision": round(2 / 3, 4), "recall": 1.0,
                                        "f1": 0.8, "support": 2}
    assert s["per_class"]["water"]["iou"] == 1.0
    assert s["miou"] == round((2 / 3 + 2 / 3 + 1) / 3, 4)  # over the three classes present: 0.7778
    assert s["overall_accuracy"] == round(5 / 6, 4) and s["pixels"] == 6


def test_a_class_only_predicted_counts_as_zero_iou():
    """Predicted but never in the reference: precision 0, recall undefined, IoU 0 and in the mean."""
    cm = confusion_matrix(np.array([0, 0, 0, 0]), np.array([0, 0, 1, 1]), 2)
    assert cm.tolist() == [[2, 2], [0, 0]]
    s = scores(cm, ["a", "b"])
    assert s["per_class"]["b"] == {"iou": 0.0, "precision": 0.0, "recall": None, "f1": None, "support": 0}
    assert s["per_class"]["a"]["recall"] == 0.5 and s["per_class"]["a"]["precision"] == 1.0
    assert s["miou"] == 0.25  # (0.5 + 0.0) / 2


def test_another_ignore_value_and_values_outside_the_classes_are_skipped():
    """``ignore=0``: pixels with 0 on either side are skipped, and so are values >= n_classes (here 255, 7)."""
    ref = np.array([[0, 1, 2], [2, 255, 1]])
    pred = np.array([[1, 1, 0], [2, 1, 7]])
    # kept pairs: (1,1) (2,2); (0,1) (2,0) have the ignore value, (255,1) (1,7) are out of range
    assert confusion_matrix(ref, pred, 3, ignore=0).tolist() == [[0, 0, 0], [0, 1, 0], [0, 0, 1]]


def test_nothing_to_score():
    """All pixels ignored: no accuracy and no mean IoU, not a division by zero."""
    s = scores(confusion_matrix(np.full(5, 255), np.arange(5), 3), ["a", "b", "c"])
    assert s["pixels"] == 0 and s["miou"] is None and s["overall_accuracy"] is None


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 6).flatmap(lambda n: st.tuples(
    st.just(n),
    arrays(np.uint8, st.integers(0, 60).map(lambda k: (2, k)), elements=st.sampled_from([*range(n + 1), 255])))))
def test_confusion_matrix_matches_a_plain_pair_count(case):
    """Random maps (with the ignore value and one value past the classes): a Counter of (ref, pred) pairs."""
    n, (ref, pred) = case[0], case[1]
    pairs = Counter((int(r), int(p)) for r, p in zip(ref, pred) if r < n and p < n)
    cm = confusion_matrix(ref, pred, n)
    assert cm.shape == (n, n)
    assert cm.tolist() == [[pairs[(i, j)] for j in range(n)] for i in range(n)]
    s = scores(cm, [str(k) for k in range(n)])
    assert s["pixels"] == sum(pairs.values())
    if s["pixels"]:
        assert s["overall_accuracy"] == round(sum(pairs[(k, k)] for k in range(n)) / s["pixels"], 4)
