"""Data: CrowdHuman .odgt I/O, synthetic crowd images and videos, transforms."""
