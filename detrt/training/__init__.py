"""Training DH-DETR / Deformable DETR: dataset and transforms, the train step and evaluation, checkpoints,
torchrun data parallelism, and the run loop behind `detrt train` (docs/training.md).

    from detrt.training.loop import fit
    from detrt.training.options import TrainOptions
"""
