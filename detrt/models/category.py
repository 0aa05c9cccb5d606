"""CQ-DINO's category side: the category queries with their relation module, and the image-guided selector.

- `CategoryBranch()` -> [C, D]: LN(relation(ReLU(Linear(queries)))). It depends on parameters only, so an
  exported graph holds its result as a constant (`CQDINO.fold_categories`).
- `ImageGuidedSelector(categories, image_tokens)`: 2 cross-attention-only post-LN layers (categories attend
  to the image), one shared Linear(D -> 1) score per category, top-K, a differentiable gather, and
  Linear(D -> d_model): the K category tokens the detector sees. Its cost is the only one growing with C.

The relation module is tree averaging for a hierarchy (parent ids) and multi-head self-attention across
categories for a flat vocabulary. (The official code feeds a batch-first tensor to a sequence-first
attention there, so each category attends only to itself; this attends across categories, as the paper
describes.)
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


class TreeAveraging(nn.Module):
    """Bottom-up: each non-leaf p <- (1 - a_p) p + a_p mean(children), deepest parents first (so updated
    children feed their parents); a_p = 0.4 + 0.4 ln(2 + N_p) / ln(2 + C), N_p = all descendants of p."""

    def __init__(self, vocabulary):
        super().__init__()
        parents, depth = list(vocabulary.parents), vocabulary.depths.tolist()
        descendants = [0] * len(parents)
        for node in sorted(range(len(parents)), key=lambda n: -depth[n]):
            if parents[node] >= 0:
                descendants[parents[node]] += 1 + descendants[node]
        alpha = [0.4 + 0.4 * math.log(2 + n) / math.log(2 + len(parents)) for n in descendants]
        self.register_buffer("alpha", torch.tensor(alpha)[:, None], persistent=False)
        # children grouped by depth, deepest first: (child ids, their parent ids) per level
        self.num_levels = max(depth)
        for level, d in enumerate(range(max(depth), 0, -1)):
            children = [n for n in range(len(parents)) if depth[n] == d]
            count = torch.zeros(len(parents), 1).index_add(0, torch.tensor([parents[n] for n in children]),
                                                           torch.ones(len(children), 1))
            self.register_buffer(f"children{level}", torch.tensor(children), persistent=False)
            self.register_buffer(f"parents{level}", torch.tensor([parents[n] for n in children]), persistent=False)
            self.register_buffer(f"count{level}", count, persistent=False)

    def forward(self, x):
        for level in range(self.num_levels):
            children, parents = getattr(self, f"children{level}"), getattr(self, f"parents{level}")
            count = getattr(self, f"count{level}")
            mean = torch.zeros_like(x).index_add(0, parents, x[children]) / count.clamp(min=1)
            x = torch.where(count > 0, (1 - self.alpha) * x + self.alpha * mean, x)
        return x


class CategoryAttention(nn.Module):
    """Multi-head self-attention across all categories, residual + LayerNorm (flat vocabularies)."""

    def __init__(self, dim, heads):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(x + self.attn(x[None], x[None], x[None], need_weights=False)[0][0])


class CategoryBranch(nn.Module):
    """forward() -> category embeddings [C, D] of a detrt.data.vocabulary.Vocabulary; `queries` is the C x D
    table (a user's embeddings, else random). A flat vocabulary relates its categories by attention."""

    def __init__(self, vocabulary, dim=768, relation_heads=8, embeddings=None):
        super().__init__()
        c = len(vocabulary)
        table = torch.randn(c, dim) * 0.02 if embeddings is None else torch.as_tensor(embeddings).float()
        if tuple(table.shape) != (c, dim):
            raise ValueError(f"category embeddings of shape {tuple(table.shape)}, expected ({c}, {dim})")
        self.queries = nn.Parameter(table.clone())
        self.proj = nn.Linear(dim, dim)
        self.relation = CategoryAttention(dim, relation_heads) if vocabulary.is_flat else TreeAveraging(vocabulary)
        self.norm = nn.LayerNorm(dim)

    def forward(self):
        return self.norm(self.relation(F.relu(self.proj(self.queries))))


class CrossAttention(nn.Module):
    """Multi-head attention of queries [B or 1, Q, D] to tokens [B, T, Dk]; the queries' projection `q` can be
    given precomputed (the first selector layer's, a constant at export). The 1 / sqrt(head dim) scale is
    applied to the T keys, not to the Q queries: the same logits, and no per-category multiply at inference."""

    def __init__(self, dim, kdim, heads, dropout=0.0):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.out = nn.Linear(dim, dim), nn.Linear(kdim, dim), nn.Linear(kdim, dim), \
            nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, tokens, q=None):
        b, t, _ = tokens.shape
        q = self.q(x) if q is None else q
        h, dh = self.heads, q.shape[-1] // self.heads
        q = q.reshape(q.shape[0], -1, h, dh).transpose(1, 2)  # [B|1, h, Q, dh]
        k = (self.k(tokens) / math.sqrt(dh)).view(b, t, h, dh).permute(0, 2, 3, 1)  # [B, h, dh, T]
        v = self.v(tokens).view(b, t, h, dh).transpose(1, 2)
        attn = self.dropout((q @ k).softmax(-1))
        out = (attn @ v).transpose(1, 2).reshape(b, -1, h * dh)
        return self.out(out)


class SelectorLayer(nn.Module):
    """BERT-style cross-attention-only layer, post-LN: x = LN(x + attn(x, image)); x = LN(x + FFN_GELU(x))."""

    def __init__(self, dim, image_dim, heads, ffn, dropout):
        super().__init__()
        self.attn = CrossAttention(dim, image_dim, heads, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.linear1, self.linear2 = nn.Linear(dim, ffn), nn.Linear(ffn, dim)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x, tokens, q=None):
        x = self.norm1(x + self.dropout1(self.attn(x, tokens, q)))
        return self.norm2(x + self.dropout2(self.linear2(F.gelu(self.linear1(x)))))


class ImageGuidedSelector(nn.Module):
    """forward(categories [C, D], feature [B, Cin, h, w] (stride 32), first_query=None) ->
    (scores [B, C] logits, selected [B, K] int64 category ids, tokens [B, K, d_model]).

    Image tokens: the global average first, then the h*w positions, Linear -> image_dim, no position
    embedding. first_query: the first layer's query projection of `categories`, when precomputed."""

    def __init__(self, in_channels, d_model, k, dim=768, image_dim=512, layers=2, heads=4, ffn=3072, dropout=0.1):
        super().__init__()
        self.k = k
        self.image_proj = nn.Linear(in_channels, image_dim)
        self.layers = nn.ModuleList(SelectorLayer(dim, image_dim, heads, ffn, dropout) for _ in range(layers))
        self.score = nn.Linear(dim, 1)
        self.to_tokens = nn.Linear(dim, d_model)
        nn.init.xavier_uniform_(self.to_tokens.weight)
        nn.init.zeros_(self.to_tokens.bias)

    def first_query(self, categories):
        return self.layers[0].attn.q(categories[None])

    def forward(self, categories, feature, first_query=None):
        flat = feature.flatten(2).transpose(1, 2)  # [B, h*w, Cin]
        tokens = self.image_proj(torch.cat([flat.mean(1, keepdim=True), flat], 1))
        x = categories[None]
        for i, layer in enumerate(self.layers):
            x = layer(x, tokens, first_query if i == 0 else None)
        scores = self.score(x)[..., 0]  # [B, C]
        selected = scores.detach().topk(self.k, dim=1)[1]  # static K: an in-graph TopK
        picked = torch.gather(x, 1, selected[..., None].expand(-1, -1, x.shape[-1]))
        return scores, selected, self.to_tokens(picked)
