"""Named model configurations (data), and the one place that turns a config into objects.

    from detrt.models import build_model, list_configs
    model = build_model("dhdetr_r18_tiny")

`build_model`, `build_criterion` and `build_postprocess` are the only readers of a `DetrConfig`; the
classes they build take plain keyword arguments.
"""

import dataclasses
from dataclasses import dataclass

from detrt.data.vocabulary import Vocabulary
from detrt.errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DetrConfig:
    """One DH-DETR / Deformable DETR configuration. Paper values are the defaults (docs/models.md)."""

    name: str
    description: str = ""
    # data
    class_names: tuple = ("person",)
    input_size: tuple = (800, 1216)  # (H, W) network input for export, multiples of 32 (reference: short side 800)
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    # backbone
    backbone: str = "resnet50"
    backbone_norm: str = "frozen_bn"  # "frozen_bn" | "bn" | "gn" (see detrt/models/backbone.py)
    freeze_at: int = 2  # stem + layer1 get no gradient
    pretrained_backbone: bool = True  # the recipe starts from ImageNet weights (detrt train --backbone-weights)
    zero_init_residual: bool = False
    # transformer
    hidden_dim: int = 256
    nheads: int = 8
    enc_layers: int = 6
    dec_layers: int = 3
    dcg_layers: int = 2  # the last dcg_layers decoder layers are DCG layers
    decoder_self_attn: bool = False  # True: Deformable DETR decoder layers (only without DCG)
    dim_feedforward: int = 512
    dropout: float = 0.1
    num_queries: int = 500
    num_feature_levels: int = 4
    enc_n_points: int = 4
    dec_n_points: int = 4
    two_stage: bool = True
    # DCG (reference config.py: iou_thr 0.4, asymmetrical_low 0.1, floor_thr 0.05, 10 neighbours)
    dcg_k: int = 10
    dcg_iou_threshold: float = 0.4
    dcg_low_score: float = 0.1
    dcg_floor_score: float = 0.05
    # matching and losses
    cost_class: float = 2.0
    cost_bbox: float = 5.0
    cost_giou: float = 2.0
    cls_loss_coef: float = 2.0
    bbox_loss_coef: float = 5.0
    giou_loss_coef: float = 2.0
    focal_alpha: float = 0.25
    ignore_ioa: float = 0.7
    gqs_detach_target: bool = False
    # training (read by the training loop, not by the model)
    lr: float = 2e-4
    lr_backbone: float = 2e-5
    lr_linear_proj_mult: float = 0.1  # for parameters named *sampling_offsets* and *reference_points*
    weight_decay: float = 1e-4
    clip_max_norm: float = 0.1
    epochs: int = 54  # reference exps/aps.sh: 54 epochs, LR step at 40, 4 GPUs x 2 images
    lr_drop: int = 40
    batch_size: int = 2
    augment: str = "detr_multiscale"  # the official recipe (docs/training.md); or "letterbox_jitter"
    # postprocess (reference testing.py: every query kept, scores below 0.05 dropped before evaluation)
    num_select: int = 500  # detections kept per image, the top-scoring (query, class) pairs
    score_floor: float = 0.05  # detections scoring below it are dropped (the exported graph zeroes them)
    # CQ-DINO (family "cqdino"; the fields below are read only for it)
    family: str = "dhdetr"  # "dhdetr" (DH-DETR / Deformable DETR) | "cqdino"
    class_parents: tuple = ()  # parent index per class, -1 for roots; empty: a flat vocabulary
    class_ids: tuple = ()  # the dataset's category ids (COCO results); empty: 1..C
    category_dim: int = 768  # category queries, selector width
    num_categories_selected: int = 100  # K: categories the selector keeps per image (V3Det 100, COCO 30)
    selector_layers: int = 2
    selector_heads: int = 4
    selector_ffn: int = 3072
    selector_image_dim: int = 512  # image tokens (global + stride 32) are projected to this width
    relation_heads: int = 8  # attention across categories (flat vocabularies)
    fusion_dim: int = 1024  # image <-> category bi-directional attention
    fusion_heads: int = 4
    dn_queries: int = 100  # denoising queries (DINO CDN); 0: none
    dn_label_noise: float = 0.5
    dn_box_noise: float = 1.0
    selector_loss: str = "asymmetric"  # "asymmetric" (hierarchical vocabularies) | "bce"
    selector_loss_coef: float = 1.0

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def decoder_kinds(self):
        if self.is_cqdino:
            return ("category",) * self.dec_layers
        plain = "self_attn" if self.decoder_self_attn else "plain"
        return (plain,) * (self.dec_layers - self.dcg_layers) + ("dcg",) * self.dcg_layers

    @property
    def is_cqdino(self):
        return self.family == "cqdino"

    @property
    def vocabulary(self):
        """The classes as a Vocabulary (validated: InputError naming this config)."""
        return Vocabulary(self.class_names, self.class_parents or None, self.class_ids or None,
                          f"config {self.name}")

    def replace(self, **changes):
        """A copy with some fields changed (dataclasses.replace); unknown fields raise InputError."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise InputError(f"unknown config field(s) {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d, where="config"):
        """Inverse of to_dict (lists from JSON become tuples); unknown or missing fields raise InputError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown or "name" not in d:
            raise InputError(f"{where}: unknown field(s) {', '.join(unknown)}" if unknown else f"{where}: no 'name'")
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        # A field the dict lacks (written before the field existed) takes its named config's value.
        return get_config(dataclasses.replace(CONFIGS[d["name"]], **fields) if d["name"] in CONFIGS else cls(**fields))


_TINY = dict(
    # Small enough to train on a 2-core CPU in under an hour (see the report in README/benchmarks):
    # ResNet-18 trained from scratch with GroupNorm (batch 2 makes BatchNorm statistics noise; frozen BN
    # is an identity without pretrained weights), nothing frozen, zero-init residuals for a stable start.
    input_size=(256, 384),
    backbone="resnet18", backbone_norm="gn", freeze_at=0, zero_init_residual=True, pretrained_backbone=False,
    hidden_dim=128, nheads=4, enc_layers=3, dim_feedforward=256, dropout=0.0,  # synthetic data never repeats
    num_queries=100, lr_backbone=2e-4, clip_max_norm=0.1, epochs=12, lr_drop=10, batch_size=2,
    augment="letterbox_jitter",  # what the bundled model was trained with (docs/training.md)
    # every query kept, as the paper's protocol does; no score floor, the figures README reports were made so
    num_select=100, score_floor=0.0,
)

# CQ-DINO (docs/models.md): DINO-style, 6-6, 900 queries, FFN 2048, 8 heads, 4 points, cross-attention to the
# K category tokens in every decoder layer. Swin-B/L (the paper's backbones) weights cannot be had here: a
# ResNet-50 stands in, 4 levels as Swin-B's.
_CQDINO = dict(
    family="cqdino", enc_layers=6, dec_layers=6, dcg_layers=0, dim_feedforward=2048, num_queries=900,
    dropout=0.0, cls_loss_coef=1.0, lr=4e-4, lr_backbone=4e-6, weight_decay=1e-4, clip_max_norm=0.1, epochs=24,
    lr_drop=18, batch_size=16, num_select=300, score_floor=0.0, augment="detr_multiscale", input_size=(800, 1344),
)
V3DET_CLASSES = 13204
_CQDINO_TINY = dict(
    _CQDINO, input_size=(256, 384), backbone="resnet18", backbone_norm="gn", freeze_at=0, zero_init_residual=True,
    pretrained_backbone=False, hidden_dim=128, nheads=4, enc_layers=2, dec_layers=3, dim_feedforward=256,
    num_queries=100, category_dim=128, selector_heads=4, selector_ffn=256, selector_image_dim=128, relation_heads=4,
    fusion_dim=256, dn_queries=20, num_categories_selected=30, lr=2e-4, lr_backbone=2e-4, epochs=12, lr_drop=10,
    batch_size=2, augment="letterbox_jitter", num_select=100,
    class_names=tuple(f"class_{i}" for i in range(100)),  # `detrt train` takes the vocabulary of the data
)

CONFIGS = {c.name: c for c in [
    DetrConfig("dhdetr_r50_crowdhuman",
               "DH-DETR paper model: R50, 6-3 with the last 2 decoder layers DCG, FFN 512, 500 queries; "
               "CrowdHuman 93.6 AP / 39.2 MR-2 / 84.3 JI (34,576,780 trainable parameters)"),
    DetrConfig("deformable_detr_r50_crowdhuman",
               "The paper's Deformable DETR baseline (Iter-Deformable-DETR repo): single-stage, 1000 queries, "
               "6-6 with decoder self-attention, FFN 512, box refinement; 91.3 AP (37,695,522 parameters)",
               dec_layers=6, dcg_layers=0, decoder_self_attn=True, num_queries=1000, two_stage=False,
               num_select=1000, epochs=50),  # its exps/base.sh: 50 epochs, 8 GPUs x 1 image
    DetrConfig("dhdetr_r18_tiny",
               "DH-DETR on ResNet-18 from scratch at 384x256: 3-3 with the last 2 decoder layers DCG, "
               "hidden 128, 100 queries; trains on a CPU (synthetic crowds)", **_TINY),
    DetrConfig("deformable_detr_r18_tiny",
               "Ablation of dhdetr_r18_tiny without DCG: 3 decoder layers with self-attention, each refining "
               "boxes; everything else equal", **{**_TINY, "dcg_layers": 0, "decoder_self_attn": True}),
    DetrConfig("cqdino_r50_v3det",
               "CQ-DINO's architecture (6-6, 900 queries, K=100 of 13,204 V3Det-size categories, asymmetric "
               "selector loss) on a ResNet-50 stand-in for Swin-B; placeholder class names until trained",
               class_names=tuple(f"class_{i}" for i in range(V3DET_CLASSES)), **_CQDINO),
    DetrConfig("cqdino_tiny",
               "CQ-DINO on ResNet-18 from scratch at 384x256: 2-3, hidden 128, category width 128, K=30, "
               "100 queries; trains on a CPU (synthetic vocabulary data)", **_CQDINO_TINY),
]}


def list_configs():
    """Names of the built-in configs."""
    return sorted(CONFIGS)


def get_config(name_or_config, **changes):
    """A DetrConfig from a name (InputError listing the valid names if unknown) or a DetrConfig."""
    if isinstance(name_or_config, DetrConfig):
        cfg = name_or_config
    elif name_or_config in CONFIGS:
        cfg = CONFIGS[name_or_config]
    else:
        raise InputError(f"unknown model config {name_or_config!r}; valid: {', '.join(list_configs())}")
    cfg = cfg.replace(**changes) if changes else cfg
    _check(cfg)
    return cfg


def _check(cfg):
    h, w = cfg.input_size
    if h % 32 or w % 32:
        raise InputError(f"config {cfg.name}: input_size {cfg.input_size} must be multiples of 32")
    if not 0 <= cfg.dcg_layers <= cfg.dec_layers:
        raise InputError(f"config {cfg.name}: dcg_layers {cfg.dcg_layers} not in [0, dec_layers={cfg.dec_layers}]")
    if cfg.dcg_layers and cfg.decoder_self_attn:
        raise InputError(f"config {cfg.name}: DCG layers replace decoder self-attention; set one of them")
    if cfg.dcg_layers == cfg.dec_layers and cfg.dcg_layers:
        raise InputError(f"config {cfg.name}: the first decoder layer must refine boxes (dcg_layers < dec_layers)")
    if cfg.hidden_dim % cfg.nheads or cfg.hidden_dim % 32:
        raise InputError(f"config {cfg.name}: hidden_dim {cfg.hidden_dim} must divide by nheads and by 32 (GroupNorm)")
    if cfg.num_select < 1:
        raise InputError(f"config {cfg.name}: num_select {cfg.num_select} must be at least 1")
    if not 0.0 <= cfg.score_floor < 1.0:
        raise InputError(f"config {cfg.name}: score_floor {cfg.score_floor} must be in [0, 1)")
    if cfg.is_cqdino:
        _check_cqdino(cfg)
    tokens = sum((h // s) * (w // s) for s in (8, 16, 32, 64, 128)[:cfg.num_feature_levels])
    if cfg.two_stage and tokens < cfg.num_queries:
        raise InputError(f"config {cfg.name}: {tokens} encoder tokens at {h}x{w} < num_queries {cfg.num_queries}")


def _check_cqdino(cfg):
    if cfg.dcg_layers:
        raise InputError(f"config {cfg.name}: CQ-DINO has no DCG layers (dcg_layers {cfg.dcg_layers})")
    if not 1 <= cfg.num_categories_selected <= cfg.num_classes:
        raise InputError(f"config {cfg.name}: K = num_categories_selected {cfg.num_categories_selected} must be "
                         f"in [1, C = {cfg.num_classes}] (the number of class names)")
    cfg.vocabulary  # names, hierarchy and ids valid
    if cfg.selector_loss not in ("asymmetric", "bce"):
        raise InputError(f"config {cfg.name}: selector_loss {cfg.selector_loss!r} is not 'asymmetric' or 'bce'")
    for field in ("category_dim", "fusion_dim"):
        if getattr(cfg, field) % cfg.selector_heads or getattr(cfg, field) % cfg.fusion_heads:
            raise InputError(f"config {cfg.name}: {field} must divide by selector_heads and fusion_heads")


def build_model(name_or_config, embeddings=None, **changes):
    """The model of a named config (or a DetrConfig), freshly initialized; fields can be overridden.
    embeddings: CQ-DINO's initial category queries [C, category_dim] (a user's table), else random."""
    from detrt.models.backbone import ResNet
    from detrt.models.category import CategoryBranch, ImageGuidedSelector
    from detrt.models.cqdino import CQDINO
    from detrt.models.deformable_transformer import DeformableTransformer
    from detrt.models.dhdetr import DHDETR

    cfg = get_config(name_or_config, **changes)
    backbone = ResNet(cfg.backbone, cfg.backbone_norm, cfg.freeze_at, cfg.zero_init_residual)
    transformer = DeformableTransformer(
        d_model=cfg.hidden_dim, nhead=cfg.nheads, num_encoder_layers=cfg.enc_layers,
        decoder_kinds=cfg.decoder_kinds, dim_feedforward=cfg.dim_feedforward, dropout=cfg.dropout,
        num_feature_levels=cfg.num_feature_levels, enc_n_points=cfg.enc_n_points, dec_n_points=cfg.dec_n_points,
        two_stage=cfg.two_stage, dcg_k=cfg.dcg_k, dcg_iou_threshold=cfg.dcg_iou_threshold,
        dcg_low_score=cfg.dcg_low_score, box_query_init=not cfg.is_cqdino)
    if cfg.is_cqdino:
        categories = CategoryBranch(cfg.vocabulary, cfg.category_dim, cfg.relation_heads, embeddings)
        selector = ImageGuidedSelector(backbone.num_channels[-1], cfg.hidden_dim, cfg.num_categories_selected,
                                       cfg.category_dim, cfg.selector_image_dim, cfg.selector_layers,
                                       cfg.selector_heads, cfg.selector_ffn, cfg.dropout)
        model = CQDINO(backbone, transformer, categories, selector, cfg.num_queries, cfg.num_feature_levels,
                       cfg.fusion_dim, cfg.fusion_heads, cfg.dropout, cfg.dn_queries, cfg.dn_label_noise,
                       cfg.dn_box_noise)
        model.config = cfg
        return model
    model = DHDETR(backbone, transformer, cfg.num_classes, cfg.num_queries, cfg.num_feature_levels,
                   cfg.dcg_floor_score)
    model.config = cfg
    return model


def build_criterion(name_or_config, **changes):
    """The SetCriterion (with its HungarianMatcher and weight_dict) of a config."""
    from detrt.models.losses import CategoryQueryCriterion, SetCriterion, cqdino_loss_weights, loss_weights
    from detrt.models.matcher import HungarianMatcher

    cfg = get_config(name_or_config, **changes)
    matcher = HungarianMatcher(cfg.cost_class, cfg.cost_bbox, cfg.cost_giou, cfg.focal_alpha,
                               all_columns=cfg.is_cqdino)
    if cfg.is_cqdino:
        weights = cqdino_loss_weights(cfg.dec_layers, cfg.dn_queries > 0, cfg.cls_loss_coef, cfg.bbox_loss_coef,
                                      cfg.giou_loss_coef, cfg.selector_loss_coef)
        return CategoryQueryCriterion(cfg.vocabulary, matcher, weights, cfg.focal_alpha, cfg.selector_loss)
    weights = loss_weights(cfg.dec_layers, cfg.two_stage, cfg.cls_loss_coef, cfg.bbox_loss_coef, cfg.giou_loss_coef)
    return SetCriterion(cfg.num_classes, matcher, weights, cfg.focal_alpha, cfg.ignore_ioa, cfg.gqs_detach_target)


def build_postprocess(name_or_config, **changes):
    from detrt.models.dhdetr import PostProcess

    cfg = get_config(name_or_config, **changes)
    return PostProcess(cfg.num_select, cfg.score_floor)
