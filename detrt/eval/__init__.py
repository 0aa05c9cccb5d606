"""Evaluation: CrowdHuman AP, MR-2, JI and the duplicate rate; COCO-style AP for multi-class models."""
