"""DH-DETR's set criterion: focal classification, L1 and GIoU box losses on every decoder layer and on the
encoder proposals (docs/models.md).

- Matching: `HungarianMatcher`, per output; the encoder proposals are matched class-agnostically.
- Ignore regions: a prediction whose box lies >= `ignore_ioa` inside an ignore region (IoA = intersection
  over the prediction's area) gets no classification loss unless it is matched.
- DCG layers (outputs with `query_mask`): classification loss on c_i = 1 queries only.
- GQS: the encoder's focal target for a matched proposal is its GIoU with the GT instead of 1.
Targets: list of dicts with boxes [G, 4] (cxcywh normalized to the network input), labels [G] int64 and
optionally ignore_boxes [I, 4] (same format).
"""

import torch
import torch.nn.functional as F
from torch import nn

from detrt.models.cqdino import label_columns
from detrt.ops.box_ops import box_area, box_cxcywh_to_xyxy, generalized_box_iou


def sigmoid_focal_loss(logits, targets, num_boxes, alpha=0.25, gamma=2.0):
    """Focal loss with soft targets t in [-1, 1]: p_t = p t + (1-p)(1-t), alpha_t = a t + (1-a)(1-t);
    sum of alpha_t (1 - p_t)^gamma BCE(x, t) over all elements, divided by num_boxes."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.sum() / num_boxes


def box_ioa(a, b):
    """Intersection over the area of a, pairwise for xyxy boxes a [N, 4], b [M, 4] -> [N, M]."""
    wh = (torch.min(a[:, None, 2:], b[None, :, 2:]) - torch.max(a[:, None, :2], b[None, :, :2])).clamp(min=0)
    return wh[..., 0] * wh[..., 1] / box_area(a)[:, None]


class SetCriterion(nn.Module):
    """forward(outputs, targets) -> dict of unweighted losses: loss_ce, loss_bbox, loss_giou for the last
    layer, the same with suffix _{i} for aux_outputs[i] and _enc for the encoder proposals.
    The training loss is sum(losses[k] * weight_dict[k]) over the keys of weight_dict (see `total`).
    """

    denoising = False  # the model takes no targets in training (CategoryQueryCriterion's does)

    def __init__(self, num_classes, matcher, weight_dict, focal_alpha=0.25, ignore_ioa=0.7,
                 gqs_detach_target=False, gqs=True):
        """weight_dict: weight of each loss key (DH-DETR: loss_ce 2, loss_bbox 5, loss_giou 2, per layer).
        gqs_detach_target: the reference code lets the focal loss backpropagate into the encoder boxes
        through the GIoU target; True stops that gradient. gqs False: the encoder proposals are matched
        and classified like a decoder layer (DINO)."""
        super().__init__()
        self.num_classes, self.matcher, self.weight_dict = num_classes, matcher, weight_dict
        self.focal_alpha, self.ignore_ioa, self.gqs_detach_target = focal_alpha, ignore_ioa, gqs_detach_target
        self.gqs = gqs

    @staticmethod
    def _src_index(indices):
        batch = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)])
        return batch, torch.cat([src for src, _ in indices])

    def loss_labels(self, outputs, targets, indices, num_boxes, giou_target=False):
        """Focal loss over the queries that count: not ignored (or matched), and c_i = 1 in DCG layers."""
        logits, boxes = outputs["pred_logits"], outputs["pred_boxes"]
        batch, src = self._src_index(indices)
        labels = torch.cat([t["labels"][j] for t, (_, j) in zip(targets, indices)])
        if giou_target:
            gt = torch.cat([t["boxes"][j] for t, (_, j) in zip(targets, indices)])
            value = torch.diag(generalized_box_iou(box_cxcywh_to_xyxy(boxes[batch, src]), box_cxcywh_to_xyxy(gt)))
            value = value.detach() if self.gqs_detach_target else value
        else:
            value = torch.ones(len(src), dtype=logits.dtype, device=logits.device)
        pos = labels >= 0  # -1: a class without a logit column (CQ-DINO: not selected), all-zero target
        onehot = torch.zeros_like(logits).index_put((batch[pos], src[pos], labels[pos]), value[pos].to(logits.dtype))
        with torch.no_grad():
            matched = torch.zeros(logits.shape[:2], dtype=torch.bool, device=logits.device)
            matched[batch, src] = True
            keep = ~self._ignored(boxes, targets) | matched
            if outputs.get("query_mask") is not None:
                keep &= outputs["query_mask"]
        return {"loss_ce": sigmoid_focal_loss(logits[keep], onehot[keep], num_boxes, self.focal_alpha)}

    def _ignored(self, boxes, targets):
        """[B, N] bool: prediction lies >= ignore_ioa inside some ignore region of its image."""
        out = torch.zeros(boxes.shape[:2], dtype=torch.bool, device=boxes.device)
        for b, t in enumerate(targets):
            ign = t.get("ignore_boxes")
            if ign is not None and len(ign):
                ioa = box_ioa(box_cxcywh_to_xyxy(boxes[b]), box_cxcywh_to_xyxy(ign.to(boxes.dtype)))
                out[b] = (ioa >= self.ignore_ioa).any(1)
        return out

    def loss_boxes(self, outputs, targets, indices, num_boxes):
        """L1 on (cx, cy, w, h) and 1 - GIoU, summed over matched pairs and divided by num_boxes."""
        batch, src = self._src_index(indices)
        pred = outputs["pred_boxes"][batch, src]
        gt = torch.cat([t["boxes"][j] for t, (_, j) in zip(targets, indices)]).to(pred.dtype)
        giou = torch.diag(generalized_box_iou(box_cxcywh_to_xyxy(pred), box_cxcywh_to_xyxy(gt)))
        return {"loss_bbox": F.l1_loss(pred, gt, reduction="sum") / num_boxes,
                "loss_giou": (1 - giou).sum() / num_boxes}

    def _layer_losses(self, outputs, targets, num_boxes, suffix, giou_target=False):
        indices = self.matcher(outputs, targets)
        device = outputs["pred_logits"].device
        indices = [(i.to(device), j.to(device)) for i, j in indices]
        losses = self.loss_labels(outputs, targets, indices, num_boxes, giou_target)
        losses.update(self.loss_boxes(outputs, targets, indices, num_boxes))
        return {k + suffix: v for k, v in losses.items()}

    def forward(self, outputs, targets):
        num_boxes = sum(len(t["labels"]) for t in targets)
        num_boxes = torch.as_tensor(float(num_boxes), device=outputs["pred_logits"].device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(num_boxes)
            num_boxes = num_boxes / torch.distributed.get_world_size()
        num_boxes = num_boxes.clamp(min=1)
        losses = self._layer_losses(outputs, targets, num_boxes, "")
        for i, aux in enumerate(outputs.get("aux_outputs", [])):
            losses.update(self._layer_losses(aux, targets, num_boxes, f"_{i}"))
        if "enc_outputs" in outputs and not self.gqs:
            losses.update(self._layer_losses(outputs["enc_outputs"], targets, num_boxes, "_enc"))
        elif "enc_outputs" in outputs:  # class-agnostic matching, GIoU-aware targets (GQS)
            agnostic = [{**t, "labels": torch.zeros_like(t["labels"])} for t in targets]
            losses.update(self._layer_losses(outputs["enc_outputs"], agnostic, num_boxes, "_enc", giou_target=True))
        return losses

    def total(self, losses):
        """The weighted training loss: sum of losses[k] * weight_dict[k]."""
        return sum(losses[k] * w for k, w in self.weight_dict.items() if k in losses)


def loss_weights(num_decoder_layers, two_stage, cls=2.0, bbox=5.0, giou=2.0):
    """weight_dict for SetCriterion: the same three weights for every decoder layer and the encoder."""
    base = {"loss_ce": cls, "loss_bbox": bbox, "loss_giou": giou}
    suffixes = [""] + [f"_{i}" for i in range(num_decoder_layers - 1)] + (["_enc"] if two_stage else [])
    return {k + s: v for s in suffixes for k, v in base.items()}


def asymmetric_loss(logits, targets, ignore=None, gamma_neg=7.0, gamma_pos=0.0, clip=0.05, eps=1e-8):
    """Asymmetric loss (Ridnik et al.), summed: negatives' probabilities shifted down by `clip` and focused
    with gamma_neg, positives with gamma_pos. ignore: elements without loss (bool, as targets)."""
    prob = logits.sigmoid()
    prob_neg = (1 - prob + clip).clamp(max=1) if clip > 0 else 1 - prob
    loss = targets * prob.clamp(min=eps).log() + (1 - targets) * prob_neg.clamp(min=eps).log()
    p_t = prob * targets + prob_neg * (1 - targets)
    loss = loss * (1 - p_t) ** (gamma_pos * targets + gamma_neg * (1 - targets))
    if ignore is not None:
        loss = loss.masked_fill(ignore, 0.0)
    return -loss.sum()


class CategoryQueryCriterion(SetCriterion):
    """CQ-DINO's losses: SetCriterion's over the K selected columns on every decoder layer and the encoder
    (labels mapped to columns; an object whose category was not selected gets an all-zero target but is
    still matched and box-regressed), the same on the denoising queries (suffix _dn), and the selector loss
    over all C categories (loss_selector): asymmetric, with the ancestors of a positive that are not positive
    themselves left out, or plain summed BCE.
    """

    denoising = True

    def __init__(self, vocabulary, matcher, weight_dict, focal_alpha=0.25, selector_loss="asymmetric"):
        super().__init__(len(vocabulary), matcher, weight_dict, focal_alpha, gqs=False)
        self.selector_loss = selector_loss
        self.register_buffer("parents", torch.tensor(vocabulary.parents, dtype=torch.int64), persistent=False)

    def forward(self, outputs, targets):
        local = [{**t, "labels": label_columns(t["labels"], ids)} for t, ids in zip(targets, outputs["category_ids"])]
        losses = super().forward(outputs, local)
        num_boxes = max(sum(len(t["labels"]) for t in targets), 1)
        meta = outputs.get("dn_meta")
        for i, layer in enumerate(outputs.get("dn_outputs", [])):
            suffix = "_dn" if i == len(outputs["dn_outputs"]) - 1 else f"_dn_{i}"
            losses.update({k + suffix: v for k, v in self.denoising_losses(layer, local, meta, num_boxes).items()})
        losses["loss_selector"] = self.loss_selector(outputs["selector_logits"], targets)
        return losses

    def denoising_losses(self, outputs, targets, meta, num_boxes):
        """Each denoising query's target is known: positives their object (class and box), negatives none."""
        gt_index, positive = meta["gt_index"], meta["positive"]
        norm = num_boxes * meta["groups"]
        valid = gt_index >= 0
        batch, src = (valid & positive).nonzero(as_tuple=True)
        labels = torch.stack([targets[b]["labels"][gt_index[b, s]] for b, s in zip(batch, src)]) if len(batch) \
            else gt_index.new_zeros(0)
        pos = labels >= 0
        logits = outputs["pred_logits"]
        ones = torch.ones(int(pos.sum()), dtype=logits.dtype, device=logits.device)
        onehot = torch.zeros_like(logits).index_put((batch[pos], src[pos], labels[pos]), ones)
        loss_ce = sigmoid_focal_loss(logits[valid], onehot[valid], norm, self.focal_alpha)
        pred = outputs["pred_boxes"][batch, src]
        gt = torch.stack([targets[b]["boxes"][gt_index[b, s]] for b, s in zip(batch, src)]) if len(batch) \
            else pred.new_zeros(0, 4)
        giou = torch.diag(generalized_box_iou(box_cxcywh_to_xyxy(pred), box_cxcywh_to_xyxy(gt.to(pred.dtype))))
        return {"loss_ce": loss_ce, "loss_bbox": F.l1_loss(pred, gt, reduction="sum") / norm,
                "loss_giou": (1 - giou).sum() / norm}

    def loss_selector(self, logits, targets):
        """Multi-label loss of the selector's [B, C] logits against the categories present in each image."""
        present = torch.zeros_like(logits)
        ancestors = torch.zeros_like(logits, dtype=torch.bool)
        for b, t in enumerate(targets):
            present[b, t["labels"]] = 1.0
            node = self.parents[t["labels"]]
            while len(node):  # walk up: every ancestor of a present category
                node = node[node >= 0]
                ancestors[b, node] = True
                node = self.parents[node]
        if self.selector_loss == "bce":
            return F.binary_cross_entropy_with_logits(logits, present, reduction="sum")
        return asymmetric_loss(logits, present, ignore=ancestors & (present == 0))


def cqdino_loss_weights(num_decoder_layers, dn, cls=2.0, bbox=5.0, giou=2.0, selector=1.0):
    """weight_dict for CategoryQueryCriterion: loss_weights' keys, the same for the denoising queries
    (with dn), and loss_selector."""
    weights = loss_weights(num_decoder_layers, True, cls, bbox, giou)
    if dn:
        suffixes = ["_dn"] + [f"_dn_{i}" for i in range(num_decoder_layers - 1)]
        weights.update({k + s: w for s in suffixes for k, w in (("loss_ce", cls), ("loss_bbox", bbox),
                                                                ("loss_giou", giou))})
    return {**weights, "loss_selector": selector}
