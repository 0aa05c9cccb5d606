"""CQ-DINO: DINO-style detection whose classes are category queries, K of them chosen per image.

    categories [C, D] (category.py, parameters only) -> image-guided selector -> K category tokens [B, K, d]
    backbone -> multi-scale features -> feature enhancer (per layer: image <-> category bi-directional
    attention, then a deformable encoder layer) -> two-stage proposals ranked by their best category ->
    decoder (self-attention, attention to the category tokens, MSDA, FFN; box refinement) -> logits over
    the K tokens: q . c / sqrt(d) + b, one learnable bias b per head.

Training adds DINO's contrastive denoising queries (CDN): noised copies of the ground truth, positive and
negative, in groups that cannot see each other nor be seen by the matching queries.
"""

import copy
import math

import torch
from torch import nn

from detrt.models.category import CategoryBranch, ImageGuidedSelector
from detrt.models.deformable_attention import box_sine_embedding, inverse_sigmoid
from detrt.models.dhdetr import MLP, flat_features, input_projections
from detrt.ops.box_ops import box_cxcywh_to_xyxy


class BiAttentionBlock(nn.Module):
    """Image <-> category attention (GroundingDINO's fusion block): pre-LN, one attention map used both ways,
    layer scale (init 1e-4) on both residuals. forward(image [B, S, d], categories [B, K, d]) -> both updated."""

    def __init__(self, d_model, embed_dim=1024, heads=4, dropout=0.1, init_scale=1e-4):
        super().__init__()
        self.heads = heads
        self.norm_image, self.norm_category = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.image_q, self.image_v = nn.Linear(d_model, embed_dim), nn.Linear(d_model, embed_dim)
        self.category_k, self.category_v = nn.Linear(d_model, embed_dim), nn.Linear(d_model, embed_dim)
        self.image_out, self.category_out = nn.Linear(embed_dim, d_model), nn.Linear(embed_dim, d_model)
        self.gamma_image = nn.Parameter(torch.full((d_model,), init_scale))
        self.gamma_category = nn.Parameter(torch.full((d_model,), init_scale))
        self.dropout = nn.Dropout(dropout)

    def _heads(self, x):
        b, n, e = x.shape
        return x.view(b, n, self.heads, e // self.heads).transpose(1, 2)

    def forward(self, image, categories):
        v, c = self.norm_image(image), self.norm_category(categories)
        q = self._heads(self.image_q(v))
        attn = q @ self._heads(self.category_k(c)).transpose(-1, -2) / math.sqrt(q.shape[-1])  # [B, h, S, K]
        to_image = self.dropout(attn.softmax(-1)) @ self._heads(self.category_v(c))
        to_category = self.dropout(attn.transpose(-1, -2).softmax(-1)) @ self._heads(self.image_v(v))
        image = image + self.gamma_image * self.image_out(to_image.transpose(1, 2).flatten(2))
        categories = categories + self.gamma_category * self.category_out(to_category.transpose(1, 2).flatten(2))
        return image, categories


class ContrastiveHead(nn.Module):
    """logits [B, N, K] = queries [B, N, d] . category tokens [B, K, d] / sqrt(d) + b (b starts at -ln 99)."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.tensor(-math.log(99.0)))

    def forward(self, queries, categories):
        return queries @ categories.transpose(-1, -2) / math.sqrt(queries.shape[-1]) + self.bias


def denoising_queries(targets, num_dn, num_columns, label_noise, box_noise, label_embed, num_queries):
    """DINO's contrastive denoising queries for a batch, or None when it holds no object.

    targets: dicts with columns [G] (the object's column among the K selected, -1 when not selected: it gets
    a random one) and boxes [G, 4] cxcywh. Groups of 2 * max(G) slots: positives (box noise < 1 half-size)
    then negatives (1 to 2 half-sizes); labels flipped to a random column with probability label_noise / 2.
    Returns (tgt [B, P, d], boxes as logits [B, P, 4], attention mask [P + N, P + N] bool, meta) with meta
    {"groups", "gt_index" [B, P] (-1: padding slot), "positive" [B, P] bool}.
    """
    counts = [len(t["boxes"]) for t in targets]
    max_gt = max(counts, default=0)
    if max_gt == 0 or num_dn <= 0:
        return None
    device = targets[0]["boxes"].device
    groups = max(1, num_dn // (2 * max_gt))
    per, b = 2 * max_gt, len(targets)
    total = per * groups
    labels = torch.zeros(b, total, dtype=torch.int64, device=device)
    boxes = torch.full((b, total, 4), 0.5, device=device)
    gt_index = torch.full((b, total), -1, dtype=torch.int64, device=device)
    positive = torch.zeros(b, total, dtype=torch.bool, device=device)
    for i, (t, g) in enumerate(zip(targets, counts)):
        if not g:
            continue
        starts = torch.arange(groups, device=device)[:, None] * per
        for negative in (False, True):
            slots = (starts + torch.arange(g, device=device)[None] + (max_gt if negative else 0)).flatten()
            cols = t["columns"].repeat(groups)
            flip = (torch.rand(len(cols), device=device) < label_noise * 0.5) | (cols < 0)
            labels[i, slots] = torch.where(flip, torch.randint_like(cols, num_columns), cols)
            xyxy = box_cxcywh_to_xyxy(t["boxes"].repeat(groups, 1))
            half = (xyxy[:, 2:] - xyxy[:, :2]).repeat(1, 2) / 2
            part = torch.rand_like(xyxy) + (1.0 if negative else 0.0)
            sign = torch.randint_like(xyxy, 2) * 2 - 1
            xyxy = (xyxy + sign * part * half * box_noise).clamp(0, 1)
            boxes[i, slots] = torch.cat([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], -1)
            gt_index[i, slots] = torch.arange(g, device=device).repeat(groups)
            positive[i, slots] = not negative
    mask = torch.zeros(total + num_queries, total + num_queries, dtype=torch.bool, device=device)
    mask[total:, :total] = True  # matching queries do not see the ground truth
    for k in range(groups):
        mask[k * per:(k + 1) * per, :k * per] = True
        mask[k * per:(k + 1) * per, (k + 1) * per:total] = True
    meta = {"groups": groups, "gt_index": gt_index, "positive": positive}
    return label_embed(labels), inverse_sigmoid(boxes), mask, meta


class CQDINO(nn.Module):
    """forward(images [B, 3, H, W], sizes=None, targets=None) -> dict. sizes [B, 2] float (h, w): each image
    fills the top-left h x w pixels of its input; boxes in (targets) and out are normalized to the image, as
    DH-DETR's (None: to the input). Unlike DH-DETR the padding is not masked: the network sees it.

    - pred_logits [B, N, K]: logits of the last decoder layer over the K selected categories;
    - pred_boxes [B, N, 4] cxcywh normalized; aux_outputs: the same for each earlier decoder layer;
    - category_ids [B, K] int64: the global class id of each logit column (the selector's top-K);
    - selector_logits [B, C]: the selector's score of every category;
    - enc_outputs: pred_logits [B, S, K], pred_boxes [B, S, 4] of every encoder token;
    - with targets in training (boxes cxcywh, columns [G] as `denoising_queries` takes them): dn_outputs
      (one dict per decoder layer) and dn_meta.
    """

    def __init__(self, backbone, transformer, category_branch: CategoryBranch, selector: ImageGuidedSelector,
                 num_queries=900, num_feature_levels=4, fusion_dim=1024, fusion_heads=4, dropout=0.1,
                 dn_queries=100, dn_label_noise=0.5, dn_box_noise=1.0):
        super().__init__()
        d = transformer.d_model
        self.backbone, self.transformer = backbone, transformer
        self.categories, self.selector = category_branch, selector
        self.num_queries = num_queries
        self.dn_queries, self.dn_label_noise, self.dn_box_noise = dn_queries, dn_label_noise, dn_box_noise
        self.input_proj = input_projections(backbone.num_channels, d, num_feature_levels)
        self.fusion = nn.ModuleList(BiAttentionBlock(d, fusion_dim, fusion_heads, dropout)
                                    for _ in transformer.encoder)
        self.tgt_embed = nn.Embedding(num_queries, d)
        self.ref_point_head = MLP(2 * d, d, d, 2)
        self.label_embed = nn.Embedding(selector.k, d)
        box_head = MLP(d, d, 4, 3)
        nn.init.zeros_(box_head.layers[-1].weight)
        nn.init.zeros_(box_head.layers[-1].bias)
        heads = len(transformer.decoder) + 1  # decoder layers, then the encoder proposals
        self.class_heads = nn.ModuleList(ContrastiveHead() for _ in range(heads))
        self.bbox_embed = nn.ModuleList(copy.deepcopy(box_head) for _ in range(heads))
        self.folded = False

    @torch.no_grad()
    def fold_categories(self):
        """Store the category branch's output and the selector's first query projection as constants (for
        export: the graph then holds them instead of the branch). Returns self; call on a copy."""
        categories = self.categories()
        self.register_buffer("folded_categories", categories, persistent=False)
        self.register_buffer("folded_first_query", self.selector.first_query(categories), persistent=False)
        self.folded = True
        return self

    def forward(self, images, sizes=None, targets=None):
        # image-normalized <-> input-normalized boxes: the network works on the input, the boxes on the image
        scale = None if sizes is None else (sizes.flip(-1) / images.new_tensor(images.shape[-2:][::-1])).repeat(1, 2)
        feats = self.backbone(images)
        if self.folded:
            categories, first_query = self.folded_categories, self.folded_first_query
        else:
            categories, first_query = self.categories(), None
        selector_logits, category_ids, tokens = self.selector(categories, feats[-1], first_query)
        src, pos, spatial_shapes, level_start_index, shapes, valid, _ = flat_features(
            feats, self.input_proj, self.transformer.level_embed, self.backbone.strides, images.shape[-2:])
        memory, tokens = self._enhance(src, pos, tokens, spatial_shapes, level_start_index, shapes, valid)
        enc_memory, proposals = self.transformer.proposals(memory, shapes, valid)
        enc_logits = self.class_heads[-1](enc_memory, tokens)
        enc_unact = self.bbox_embed[-1](enc_memory) + proposals
        topk = enc_logits.amax(-1).topk(self.num_queries, dim=1)[1]
        boxes_unact = torch.gather(enc_unact, 1, topk[..., None].expand(-1, -1, 4)).detach()
        tgt = self.tgt_embed.weight[None].expand(images.shape[0], -1, -1)
        dn = None
        if self.training and targets is not None:
            boxes = [t["boxes"] if scale is None else t["boxes"] * scale[b] for b, t in enumerate(targets)]
            columns = [{"boxes": bx, "columns": label_columns(t["labels"], ids)}
                       for bx, t, ids in zip(boxes, targets, category_ids)]
            dn = denoising_queries(columns, self.dn_queries, category_ids.shape[1], self.dn_label_noise,
                                   self.dn_box_noise, self.label_embed, self.num_queries)
        attn_mask = None
        if dn is not None:
            tgt, boxes_unact = torch.cat([dn[0], tgt], 1), torch.cat([dn[1], boxes_unact], 1)
            attn_mask = dn[2]
        layers = self._decode(tgt, boxes_unact.sigmoid(), memory, tokens, spatial_shapes, level_start_index,
                              len(shapes), attn_mask)
        out = {"category_ids": category_ids, "selector_logits": selector_logits,
               "enc_outputs": {"pred_logits": enc_logits, "pred_boxes": enc_unact.sigmoid()}}
        if dn is not None:
            p = dn[0].shape[1]
            out["dn_outputs"] = [{k: v[:, :p] for k, v in layer.items()} for layer in layers]
            out["dn_meta"] = dn[3]
            layers = [{k: v[:, p:] for k, v in layer.items()} for layer in layers]
        out.update(layers[-1])
        out["aux_outputs"] = layers[:-1]
        if scale is not None:
            for d in [out, out["enc_outputs"], *out["aux_outputs"], *out.get("dn_outputs", ())]:
                d["pred_boxes"] = d["pred_boxes"] / scale[:, None]
        return out

    def _enhance(self, src, pos, tokens, spatial_shapes, level_start_index, shapes, valid):
        """Feature enhancer: per layer, fusion with the category tokens, then a deformable encoder layer."""
        ref = self.transformer.encoder_reference_points(shapes, valid)
        for fusion, layer in zip(self.fusion, self.transformer.encoder):
            src, tokens = fusion(src, tokens)
            src = layer(src, pos, ref, spatial_shapes, level_start_index)
        return src, tokens

    def _decode(self, tgt, reference, memory, tokens, spatial_shapes, level_start_index, num_levels, attn_mask):
        """Decoder layers with iterative box refinement; query_pos from each layer's reference boxes."""
        outputs = []
        for lid, layer in enumerate(self.transformer.decoder):
            sine = box_sine_embedding(inverse_sigmoid(reference), self.transformer.d_model // 2)
            query_pos = self.ref_point_head(sine)
            ref_input = reference[:, :, None].expand(-1, -1, num_levels, -1)
            tgt = layer(tgt, query_pos, ref_input, memory, spatial_shapes, level_start_index, categories=tokens,
                        attn_mask=attn_mask)
            boxes = (self.bbox_embed[lid](tgt) + inverse_sigmoid(reference)).sigmoid()
            outputs.append({"pred_logits": self.class_heads[lid](tgt, tokens), "pred_boxes": boxes})
            reference = boxes.detach()
        return outputs


def label_columns(labels, category_ids):
    """Column of each global label among the selected category ids [K]; -1 where it was not selected."""
    match = labels[:, None] == category_ids[None]
    return torch.where(match.any(1), match.int().argmax(1), torch.full_like(labels, -1))
