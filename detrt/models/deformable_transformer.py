"""Deformable DETR's encoder and decoder layers, with DH-DETR's decoder variants.

Decoder layers come in four kinds (one path each, chosen at construction):
- "plain": cross-attention + FFN, no query self-attention (DH-DETR's first decoder layers);
- "dcg": DCG + LN, then cross-attention and LN with the query mask c, then FFN (DH-DETR's last layers);
- "self_attn": query self-attention + cross-attention + FFN (Deformable DETR; the no-DCG ablation);
- "category": query self-attention + attention to the K category tokens + cross-attention + FFN (CQ-DINO).
"""

import torch
import torch.nn.functional as F
from torch import nn

from detrt.models.dcg import DeHomoCodingGenerator
from detrt.models.deformable_attention import MSDeformAttn, box_sine_embedding

DECODER_KINDS = ("plain", "dcg", "self_attn", "category")


class FFN(nn.Module):
    """x + Dropout(W2 Dropout(ReLU(W1 x))), then LayerNorm (post-norm, as Deformable DETR)."""

    def __init__(self, d_model, d_ffn, dropout):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x):
        return self.norm(x + self.dropout2(self.linear2(self.dropout1(F.relu(self.linear1(x))))))


class EncoderLayer(nn.Module):
    def __init__(self, d_model=256, d_ffn=1024, dropout=0.1, n_levels=4, n_heads=8, n_points=4):
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)
        self.ffn = FFN(d_model, d_ffn, dropout)

    def forward(self, src, pos, reference_points, spatial_shapes, level_start_index, padding=None):
        out = self.self_attn(src + pos, reference_points, src, spatial_shapes, level_start_index, padding)
        return self.ffn(self.norm(src + self.dropout(out)))


class DecoderLayer(nn.Module):
    """forward(tgt, query_pos, reference_boxes [B, N, L, 4], memory, spatial_shapes, level_start_index,
    padding=None, boxes=None, scores=None, keep=None, categories=None, attn_mask=None) -> tgt [B, N, C].

    padding [B, S]: memory tokens on input padding (None: none). A "dcg" layer also takes the previous layer's
    boxes [B, N, 4] and scores [B, N] (neighbour choice) and keep [B, N] (the query mask c; dropped queries
    leave the layer as zeros before the FFN). A "category" layer takes the category tokens [B, K, C] (no
    position embedding) and an optional self-attention mask [N, N] bool (True: not attended; it keeps
    denoising groups apart).
    """

    def __init__(self, kind="plain", d_model=256, d_ffn=1024, dropout=0.1, n_levels=4, n_heads=8, n_points=4,
                 dcg_k=10, dcg_iou_threshold=0.4, dcg_low_score=0.1):
        super().__init__()
        if kind not in DECODER_KINDS:
            raise ValueError(f"decoder layer kind {kind!r} is not one of {DECODER_KINDS}")
        self.kind = kind
        if kind in ("self_attn", "category"):
            self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
            self.dropout2 = nn.Dropout(dropout)
        if kind == "dcg":
            self.dcg = DeHomoCodingGenerator(d_model, dcg_k, dcg_iou_threshold, dcg_low_score)
        if kind == "category":
            self.category_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
            self.dropout3, self.norm3 = nn.Dropout(dropout), nn.LayerNorm(d_model)
        if kind != "plain":
            self.norm2 = nn.LayerNorm(d_model)
        self.cross_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.ffn = FFN(d_model, d_ffn, dropout)

    def forward(self, tgt, query_pos, reference_boxes, memory, spatial_shapes, level_start_index, padding=None,
                boxes=None, scores=None, keep=None, categories=None, attn_mask=None):
        c = 1.0
        if self.kind in ("self_attn", "category"):
            q = tgt + query_pos
            out = self.self_attn(q, q, tgt, attn_mask=attn_mask, need_weights=False)[0]
            tgt = self.norm2(tgt + self.dropout2(out))
        if self.kind == "category":
            out = self.category_attn(tgt + query_pos, categories, categories, need_weights=False)[0]
            tgt = self.norm3(tgt + self.dropout3(out))
        elif self.kind == "dcg":
            c = keep[..., None].to(tgt.dtype)  # multiplicative mask: no data-dependent control flow
            tgt = self.norm2(self.dcg(tgt, boxes, scores) * c)
        out = self.cross_attn((tgt + query_pos) * c, reference_boxes, memory, spatial_shapes, level_start_index,
                              padding)
        tgt = self.norm1((tgt + self.dropout1(out)) * c)
        return self.ffn(tgt)


class DeformableTransformer(nn.Module):
    """Encoder, decoder layers and the query initialization of (two-stage) Deformable DETR.

    Inputs are flattened multi-scale features. Where an image fills only the top-left of its input, `valid`
    [B, L, 2] gives the (w, h) feature pixels of each level that hold it and `padding` [B, S] (True on
    padding) the tokens that do not: as in Deformable DETR, points and boxes are normalized to the image
    (the valid part of each level), padded tokens are read as zeros and propose nothing. Without padding
    `valid` is each level's (w, h) and `padding` None.
    """

    def __init__(self, d_model=256, nhead=8, num_encoder_layers=6, decoder_kinds=("plain",) * 6, dim_feedforward=1024,
                 dropout=0.1, num_feature_levels=4, enc_n_points=4, dec_n_points=4, two_stage=True,
                 dcg_k=10, dcg_iou_threshold=0.4, dcg_low_score=0.1, box_query_init=True):
        """box_query_init (two-stage): queries from the proposal boxes (pos_trans, Deformable DETR); False:
        the model brings its own (CQ-DINO: learned content queries, position from the boxes)."""
        super().__init__()
        self.d_model, self.two_stage = d_model, two_stage
        self.encoder = nn.ModuleList(
            EncoderLayer(d_model, dim_feedforward, dropout, num_feature_levels, nhead, enc_n_points)
            for _ in range(num_encoder_layers))
        self.decoder = nn.ModuleList(
            DecoderLayer(kind, d_model, dim_feedforward, dropout, num_feature_levels, nhead, dec_n_points,
                         dcg_k, dcg_iou_threshold, dcg_low_score) for kind in decoder_kinds)
        self.level_embed = nn.Parameter(torch.empty(num_feature_levels, d_model))
        if two_stage:
            self.enc_output = nn.Linear(d_model, d_model)
            self.enc_output_norm = nn.LayerNorm(d_model)
        if two_stage and box_query_init:
            self.pos_trans = nn.Linear(2 * d_model, 2 * d_model)
            self.pos_trans_norm = nn.LayerNorm(2 * d_model)
        elif not two_stage:
            self.reference_points = nn.Linear(d_model, 4)  # Iter-Deformable-DETR: reference boxes, not points
        self._reset_parameters()

    def _reset_parameters(self):
        # Deformable DETR: xavier on every matrix (DCG, FFN, projections), then MSDA's own init.
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m._reset_parameters()
        if not self.two_stage:
            nn.init.zeros_(self.reference_points.bias)
        nn.init.normal_(self.level_embed)

    @staticmethod
    def _pixel_centres(shapes, valid):
        """Pixel centres of every level normalized to the image's part of it: [B, S, 2] as (x, y)."""
        centres = []
        for lvl, (h, w) in enumerate(shapes):
            y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=valid.device),
                                  torch.arange(w, dtype=torch.float32, device=valid.device), indexing="ij")
            xy = torch.stack([x.flatten() + 0.5, y.flatten() + 0.5], -1)
            centres.append(xy[None] / valid[:, None, lvl])
        return torch.cat(centres, 1)

    @staticmethod
    def valid_ratios(valid, shapes):
        """[B, L, 2]: the share (x, y) of each level that holds the image."""
        return valid / torch.tensor([[w, h] for h, w in shapes], dtype=valid.dtype, device=valid.device)

    def encoder_reference_points(self, shapes, valid):
        """Deformable DETR's encoder reference points: each token's centre on the image, on every level,
        [B, S, L, 2]."""
        return self._pixel_centres(shapes, valid)[:, :, None] * self.valid_ratios(valid, shapes)[:, None]

    def encode(self, src, pos, spatial_shapes, level_start_index, shapes, valid, padding=None):
        """src, pos [B, S, C] (pos includes the level embedding) -> memory [B, S, C]."""
        ref = self.encoder_reference_points(shapes, valid)
        for layer in self.encoder:
            src = layer(src, pos, ref, spatial_shapes, level_start_index, padding)
        return src

    def proposals(self, memory, shapes, valid, padding=None):
        """Two-stage proposals: one box per memory token (its pixel centre, size 0.05 * 2^level, normalized to
        the image).

        Returns (output_memory [B, S, C], proposals as logits [B, S, 4]); padded tokens and those whose box is
        not strictly inside (0.01, 0.99) get memory 0 and logits +inf, as Deformable DETR's
        gen_encoder_output_proposals.
        """
        xy = self._pixel_centres(shapes, valid)
        wh = torch.cat([torch.full((h * w, 2), 0.05 * 2.0 ** lvl, device=memory.device)
                        for lvl, (h, w) in enumerate(shapes)])
        boxes = torch.cat([xy, wh[None].expand(xy.shape[0], -1, -1)], -1)
        valid_box = ((boxes > 0.01) & (boxes < 0.99)).all(-1, keepdim=True)
        if padding is not None:
            valid_box = valid_box & ~padding[..., None]
        unact = torch.log(boxes / (1 - boxes)).masked_fill(~valid_box, float("inf"))
        out = self.enc_output_norm(self.enc_output(memory.masked_fill(~valid_box, 0.0)))
        return out, unact.expand(memory.shape[0], -1, -1)

    def queries_from_boxes(self, boxes_unact):
        """GQS query init: (query_pos, tgt) = split(LN(Linear(sine(top-K boxes)))), each [B, K, C]."""
        emb = self.pos_trans_norm(self.pos_trans(box_sine_embedding(boxes_unact, self.d_model // 2)))
        return emb.split(self.d_model, -1)
