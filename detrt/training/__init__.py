"""Training DH-DETR / Deformable DETR: the options, dataset and transforms, the train step and evaluation, the
resume state, torchrun data parallelism, and the run loop behind `detrt train` (docs/training.md).

    from detrt.training.loop import fit
    from detrt.training.options import TrainOptions
"""
