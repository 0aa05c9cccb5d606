"""The duplicate rate on hand-made detections."""

import numpy as np

from detrt.data.crowdhuman import GroundTruth, OdgtDetections
from detrt.eval.duplicates import duplicate_rate, image_duplicates

A = [100, 100, 140, 200]  # two persons side by side, overlapping (IoU 0.33)
B = [120, 100, 160, 200]


def test_duplicate_needs_overlap_with_a_confident_detection_and_no_person_of_its_own():
    gt = np.array([A, B], float)
    a2 = [101, 101, 141, 201]  # A again: IoU 0.93 with the first A detection
    boxes = np.array([A, B, a2, [300, 100, 340, 200], [302, 100, 342, 200], a2], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.2])
    # a2 (0.7) matches no person: A is taken by 0.9 -> duplicate. B (0.8) overlaps A (IoU 0.33 < 0.7) and is its
    # own person. The pair at x=300 matches nobody: both sit on each other (IoU 0.9): 2 duplicates. The last a2
    # is below the score threshold: not counted at all.
    assert image_duplicates(boxes, scores, gt, np.zeros((0, 4))) == (3, 5)
    # two persons standing in one place: two overlapping detections each match one: no duplicate
    assert image_duplicates(np.array([A, a2], float), np.array([0.9, 0.8]), np.array([A, a2], float),
                            np.zeros((0, 4))) == (0, 2)


def test_detections_in_ignore_regions_are_set_aside():
    boxes = np.array([A, A], float)
    assert image_duplicates(boxes, np.array([0.9, 0.8]), np.zeros((0, 4)), np.array([[90, 90, 170, 210]], float)) \
        == (0, 0)


def test_duplicate_rate_over_images_clips_to_the_image():
    gt = [GroundTruth("a", np.array([A], float), np.zeros((0, 4)), 200, 150),
          GroundTruth("b", np.array([B], float), np.zeros((0, 4)), 200, 150)]
    # clipped to the 150 px high image both boxes of "a" become [100, 100, 140, 150] and one is a duplicate
    dt = [OdgtDetections("a", np.array([A, [100, 100, 140, 400]], float), np.array([0.9, 0.5])),
          OdgtDetections("b", np.array([B], float), np.array([0.9]))]
    r = duplicate_rate(gt, dt)
    assert r == {"duplicate_rate": 1 / 3, "duplicates": 1, "confident_detections": 3, "duplicates_per_image": 0.5}
    assert duplicate_rate(gt, [])["duplicate_rate"] == 0.0
