"""The hyperparameters of a training run, in one object: each field's default and help are those of the
`detrt train` flag of the same name (kebab-case); fields without help are for Python callers only.

    from detrt.training.options import TrainOptions
    opts = TrainOptions("dhdetr_r18_tiny", "train/annotations.odgt", "train/images", max_steps=6000)

Fields left None take the model config's values (epochs, batch_size, lr; the LR drop from its lr_drop/epochs).
No torch here: the command line builds its flags from this module.
"""

from dataclasses import MISSING, dataclass, field

from detrt.errors import InputError


@dataclass(frozen=True)
class Augment:
    """Training augmentation, applied in this order: flip, crop, multi-scale letterbox
    (the schemes: detrt/training/transforms.py)."""

    scheme: str = None  # "detr_multiscale" | "letterbox_jitter"; None: the config's `augment`
    flip: float = 0.5  # probability of a horizontal flip
    crop: float = 0.5  # probability of a random crop (the zoom-in; the multi-scale resize scales it up)
    # letterbox_jitter
    crop_min_side: float = 0.5  # a crop keeps at least this fraction of the width and of the height
    min_visible: float = 0.3  # a person keeping less of its area after a crop becomes an ignore region
    scale_min: float = 0.7  # multi-scale: letterbox at U(scale_min, 1) times the fitting scale
    # detr_multiscale (Deformable DETR's make_coco_transforms)
    scales: tuple = tuple(range(480, 801, 32))  # short sides of the multi-scale resize
    max_size: int = 1333  # its long side at most
    crop_resize: tuple = (400, 500, 600)  # short sides before the crop
    crop_size: tuple = (384, 600)  # crop width and height range, pixels


def flag(default, help, **argparse_keywords):
    """A field that is also a `detrt train` flag (a required one without a default)."""
    return field(default=default, metadata={"help": help, **argparse_keywords})


@dataclass
class TrainOptions:
    """Everything a training run reads."""

    config: object = flag(MISSING, "model config name (detrt.models.list_configs())")  # or a DetrConfig
    data: str = flag(MISSING, "training ground truth: CrowdHuman .odgt, or COCO-format .json (its categories become "
                              "the model's classes)")
    images: str = flag(MISSING, "directory of the training images (ID.jpg / ID.png ...)")
    val_data: str = flag(None, "validation ground truth, as --data (.odgt: AP, MR-2, JI, duplicate rate; .json: COCO "
                               "AP at 100 and 300 detections); picks best/")
    val_images: str = flag(None, "directory of the validation images")
    epochs: int = flag(None, "epochs (default: the config's)")
    batch_size: int = flag(None, "images per step and process (default: the config's)")
    lr: float = flag(None, "learning rate (default: the config's; backbone and sampling offsets keep their ratios)")
    output: str = flag("runs/train", "run directory: last/, best/, log.jsonl")
    resume: str = flag(None, "continue from a run's last/ checkpoint", metavar="DIR")
    seed: int = flag(0, "random seed: same seed, same run")
    eval_every: int = flag(1, "epochs between evaluations (and always at the end)")
    workers: int = flag(2, "data loading processes")
    max_steps: int = flag(None, "stop after this many optimizer steps")
    time_budget: float = flag(None, "stop after this many minutes", metavar="MIN")
    lr_drop_step: int = flag(None, "optimizer step where the LR drops to 0.1x (default: the config's "
                                   "lr_drop/epochs fraction of the run)")
    warmup_steps: int = flag(0, "linear LR warm-up steps")
    save_every: int = flag(0, "also save last/ every N steps; 0: per epoch only")
    log_every: int = flag(20, "steps between loss lines in log.jsonl")
    backbone_weights: str = flag(None, "torchvision-named ResNet weights (.safetensors or .pth)")
    embeddings: str = flag(None, "CQ-DINO: category embedding table (.safetensors: 'embeddings' [N, D], metadata "
                                 "'names') that starts the category queries; default random")
    device: str = flag(None, "where to train (default: cuda if available)", choices=("cpu", "cuda"))
    augment: Augment = field(default_factory=Augment)
    progress: bool = True  # progress bars and evaluation lines on stdout
    notes: dict = field(default_factory=dict)  # copied into checkpoint.json (e.g. data seeds)


def check_options(opts):
    """Refuse values torch would reject with a traceback, or that would train silently wrong, naming the flag."""
    if opts.lr is not None and not 0 < opts.lr < float("inf"):
        raise InputError(f"--lr must be a positive number, got {opts.lr}")
    if opts.time_budget is not None and not opts.time_budget > 0:
        raise InputError(f"--time-budget must be > 0 minutes, got {opts.time_budget}")
    for name, value, low in (("--epochs", opts.epochs, 1), ("--batch-size", opts.batch_size, 1),
                             ("--eval-every", opts.eval_every, 1), ("--workers", opts.workers, 0),
                             ("--max-steps", opts.max_steps, 1), ("--lr-drop-step", opts.lr_drop_step, 0),
                             ("--warmup-steps", opts.warmup_steps, 0), ("--save-every", opts.save_every, 0),
                             ("--log-every", opts.log_every, 1)):
        if value is not None and value < low:
            raise InputError(f"{name} must be >= {low}, got {value}")
