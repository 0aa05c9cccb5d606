"""PyTorch model definitions: backbone, deformable attention, DH-DETR, CQ-DINO, matcher, losses, configs."""
