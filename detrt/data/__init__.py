"""Data: CrowdHuman .odgt I/O, synthetic crowd images and videos, and the preprocessing that training,
calibration and the runtime share (frames to network input)."""
