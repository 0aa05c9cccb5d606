"""Evaluation: CrowdHuman AP, MR-2 and JI; COCO-style AP for multi-class models."""
