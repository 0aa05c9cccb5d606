"""The metrics table as printed, and image sizes read only where a record lacks one (hand-made values)."""

import cv2
import numpy as np

from detrt.data.crowdhuman import GroundTruth
from detrt.eval.crowdhuman import format_table, image_sizes


def test_format_table_exact_text():
    result = {"AP": 0.5, "MR2": 0.25, "JI": 0.125, "JI_dhdetr": 0.1, "images": 3, "persons": 7,
              "ignore_regions": 1, "detections": 9}
    assert format_table(result).splitlines() == [
        f"{'metric':<46}{'value':>9}",
        f"{'AP':<46}   50.00%",
        f"{'MR-2':<46}   25.00%",
        f"{'JI (CrowdDet: t 0.0-0.9, images with boxes)':<46}   12.50%",
        f"{'JI (DH-DETR: t 0.1-0.9, all images)':<46}   10.00%",
        "images 3, persons 7, ignore regions 1, detections 9",
    ]


def test_image_sizes_reads_records_missing_width_or_height(tmp_path):
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), np.zeros((48, 80), np.uint8))  # H 48, W 80: not square, one channel
    none = np.zeros((0, 4))
    records = [GroundTruth("sized", none, none, 10, 20, image_path=path),
               GroundTruth("width_only", none, none, 10, None, image_path=path),
               GroundTruth("no_file", none, none)]
    assert image_sizes(records) == {"width_only": (80, 48)}
