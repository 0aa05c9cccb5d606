"""The duplicate rate's branches with hand-computed values: score order, the threshold edges, images without
detections or sizes, and a non-default IoU threshold (the survivors of `make mutation`)."""

import numpy as np

from detrt.data.crowdhuman import GroundTruth, OdgtDetections
from detrt.eval.duplicates import duplicate_rate, image_duplicates

NONE = np.zeros((0, 4))
PERSON = [0, 0, 100, 100]
# IoU(A, B) = 0.9, IoU(B, C) = 0.67, IoU(A, C) = 0.6, IoU(C, PERSON) = 0.6: C alone matches the person, but
# below A in score it is a plain false positive that sits on no detection (0.67 < 0.7).
A, B, C = [0, 0, 100, 100], [0, 0, 100, 90], [0, 0, 100, 60]


def test_higher_score_takes_the_person_and_a_lone_false_positive_is_no_duplicate():
    boxes = np.array([C, A, B, A], float)
    scores = np.array([0.4, 0.9, 0.5, 0.3])  # the last A is at the score threshold: not confident (> 0.3)
    # A takes the person; B sits on A (0.9): duplicate; C sits on nothing: a false positive, not a duplicate.
    assert image_duplicates(boxes, scores, np.array([PERSON], float), NONE) == (1, 3)


def test_no_confident_detection_counts_nothing():
    assert image_duplicates(np.array([A, B], float), np.array([0.2, 0.1]), np.array([PERSON], float), NONE) \
        == (0, 0)


def test_iou_threshold_is_the_callers():
    # B on A is a duplicate at 0.7 (IoU 0.9) but not at 0.95
    gt = [GroundTruth("a", np.array([PERSON], float), NONE, 200, 150)]
    dt = {"a": OdgtDetections("a", np.array([A, B], float), np.array([0.9, 0.5]))}
    assert duplicate_rate(gt, dt)["duplicates"] == 1
    assert duplicate_rate(gt, dt, iou_threshold=0.95)["duplicates"] == 0


def test_images_without_detections_or_size_still_count():
    # "empty" comes first and has no detections: the images after it are still counted. "nosize" has no
    # height: its boxes are used as they are (not clipped to a 0x0 image).
    gt = [GroundTruth("empty", np.array([PERSON], float), NONE, 200, 150),
          GroundTruth("nosize", np.array([PERSON], float), NONE, 200),
          GroundTruth("sized", np.array([PERSON], float), NONE, 200, 150)]
    dt = [OdgtDetections("empty", np.zeros((0, 4)), np.zeros(0)),
          OdgtDetections("nosize", np.array([A, B], float), np.array([0.9, 0.5])),
          OdgtDetections("sized", np.array([A, B], float), np.array([0.9, 0.5]))]
    r = duplicate_rate(gt, dt)
    assert r == {"duplicate_rate": 0.5, "duplicates": 2, "confident_detections": 4, "duplicates_per_image": 2 / 3}
    assert duplicate_rate(gt[2:], dt)["duplicates_per_image"] == 1.0
