"""CQ-DINO: the category branch, the image-guided selector, the detector, its matcher and losses."""

import math

import pytest
import torch

from detrt.errors import InputError
from detrt.models import build_criterion, build_model, build_postprocess, get_config
from detrt.data.vocabulary import Vocabulary
from detrt.models.category import (CategoryAttention, CategoryBranch, CrossAttention, ImageGuidedSelector,
                                   TreeAveraging)
from detrt.models.cqdino import denoising_queries, label_columns
from detrt.models.losses import asymmetric_loss
from detrt.models.matcher import HungarianMatcher

SMALL = dict(input_size=(128, 192), class_names=tuple(f"c{i}" for i in range(40)), num_categories_selected=8,
             num_queries=30, dn_queries=8)


def targets():
    return [{"boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.65, 0.55, 0.3, 0.4]]), "labels": torch.tensor([3, 17])},
            {"boxes": torch.tensor([[0.5, 0.5, 0.25, 0.3]]), "labels": torch.tensor([25])}]


def test_tree_averaging_by_hand():
    # 0 <- 1 <- 3 and 0 <- 2: node 1 takes its child 3 first, then 0 averages the updated 1 and 2
    vocab = Vocabulary(("a", "b", "c", "d"), (-1, 0, 0, 1))
    x = torch.tensor([[1.0], [2.0], [4.0], [8.0]])
    a = [0.4 + 0.4 * math.log(2 + n) / math.log(2 + 4) for n in (3, 1, 0, 0)]
    x1 = (1 - a[1]) * 2.0 + a[1] * 8.0
    x0 = (1 - a[0]) * 1.0 + a[0] * (x1 + 4.0) / 2
    torch.testing.assert_close(TreeAveraging(vocab)(x), torch.tensor([[x0], [x1], [4.0], [8.0]]))


def test_config_with_a_cycle_is_refused():
    with pytest.raises(InputError, match="config cqdino_tiny: the hierarchy has a cycle"):
        get_config("cqdino_tiny", **dict(SMALL, class_names=("a", "b", "c"), class_parents=(-1, 2, 1),
                                         num_categories_selected=2))


def test_flat_relation_attends_across_categories():
    torch.manual_seed(0)
    attn = CategoryAttention(16, 4).eval()
    x = torch.randn(5, 16)
    y = x.clone()
    y[4] += 1.0
    changed = (attn(x) - attn(y)).abs().amax(1)
    assert (changed[:4] > 1e-4).all()  # the official code's layout would leave rows 0..3 unchanged


def test_embedding_table_initializes_the_queries_and_bad_shapes_are_refused():
    table, vocab = torch.arange(12.0).view(3, 4), Vocabulary.flat(("a", "b", "c"))
    torch.testing.assert_close(CategoryBranch(vocab, 4, relation_heads=2, embeddings=table).queries.detach(), table)
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        CategoryBranch(vocab, 4, relation_heads=2, embeddings=torch.zeros(2, 4))


def test_cross_attention_is_torch_multi_head_attention():
    # the 1 / sqrt(head dim) scale sits on the keys (not once per category on the queries): the same attention
    torch.manual_seed(0)
    attn = CrossAttention(24, 20, heads=4).eval()
    ref = torch.nn.MultiheadAttention(24, 4, kdim=20, vdim=20, batch_first=True).eval()
    with torch.no_grad():
        ref.q_proj_weight.copy_(attn.q.weight)
        ref.k_proj_weight.copy_(attn.k.weight)
        ref.v_proj_weight.copy_(attn.v.weight)
        ref.in_proj_bias.copy_(torch.cat([attn.q.bias, attn.k.bias, attn.v.bias]))
        ref.out_proj.load_state_dict(attn.out.state_dict())
        x, tokens = torch.randn(2, 10, 24), torch.randn(2, 7, 20)
        want = ref(x, tokens, tokens, need_weights=False)[0]
        torch.testing.assert_close(attn(x, tokens), want)
        torch.testing.assert_close(attn(x[:1], tokens[:1], attn.q(x[:1])), want[:1])  # precomputed queries


def test_selector_top_k_gather_is_differentiable_and_first_query_folds():
    torch.manual_seed(0)
    sel = ImageGuidedSelector(32, 16, k=3, dim=24, image_dim=20, heads=4, ffn=48, dropout=0.0)
    cats = torch.randn(10, 24, requires_grad=True)
    feature = torch.randn(2, 32, 2, 3)
    scores, ids, tokens = sel(cats, feature)
    assert scores.shape == (2, 10) and tokens.shape == (2, 3, 16)
    assert torch.equal(ids, scores.topk(3, dim=1)[1])
    tokens.sum().backward()
    assert cats.grad.abs().sum() > 0
    folded = sel(cats.detach(), feature, sel.first_query(cats.detach()))
    torch.testing.assert_close(folded[2], tokens.detach())


def test_k_larger_than_c_is_refused():
    with pytest.raises(InputError, match="num_categories_selected 50"):
        get_config("cqdino_tiny", class_names=("a", "b"), num_categories_selected=50)


def test_forward_shapes_and_global_labels():
    torch.manual_seed(0)
    model = build_model("cqdino_tiny", **SMALL).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 128, 192))
    assert out["pred_logits"].shape == (2, 30, 8) and out["category_ids"].shape == (2, 8)
    assert out["selector_logits"].shape == (2, 40) and len(out["aux_outputs"]) == 2
    det = build_postprocess("cqdino_tiny", **SMALL)(out, torch.tensor([[128, 192]] * 2))
    scores, index = out["pred_logits"].sigmoid().flatten(1).topk(100, dim=1)
    for b in range(2):  # label = global id of the column, box = the query's
        assert torch.equal(det["labels"][b], out["category_ids"][b][index[b] % 8])
        torch.testing.assert_close(det["scores"][b], scores[b])


def test_denoising_groups_and_mask():
    torch.manual_seed(0)
    t = [{"boxes": targets()[0]["boxes"], "columns": torch.tensor([2, -1])},
         {"boxes": targets()[1]["boxes"], "columns": torch.tensor([5])}]
    embed = torch.nn.Embedding(8, 4)
    tgt, boxes, mask, meta = denoising_queries(t, 9, 8, 0.0, 0.4, embed, num_queries=3)
    assert meta["groups"] == 2 and tgt.shape == (2, 8, 4) and mask.shape == (11, 11)
    assert mask[8:, :8].all() and not mask[8:, 8:].any() and not mask[:8, 8:].any()
    assert mask[:4, 4:8].all() and not mask[:4, :4].any()
    assert meta["gt_index"][1].tolist() == [0, -1, 0, -1, 0, -1, 0, -1]
    assert meta["positive"][0].tolist() == [True, True, False, False] * 2
    # positives stay within 0.4 half-sizes of their box's sides, negatives move by at least that much
    xyxy = lambda b: torch.cat([b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2], -1)  # noqa: E731
    moved = (xyxy(boxes.sigmoid()[1, 0]) - xyxy(t[1]["boxes"][0])).abs() / torch.tensor([0.125, 0.15] * 2)
    assert (moved <= 0.4 + 1e-4).all()
    negative = xyxy(boxes.sigmoid()[1, 2])
    moved = (negative - xyxy(t[1]["boxes"][0])).abs() / torch.tensor([0.125, 0.15] * 2)
    assert ((moved >= 0.4 - 1e-4) | (negative <= 1e-4) | (negative >= 1 - 1e-4)).all()  # or clamped at the border


def test_matcher_class_cost_sums_over_every_column():
    logits = torch.tensor([[2.0, -1.0, 0.5], [-3.0, 1.0, 0.0]])
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.2]] * 2)
    m = HungarianMatcher(1.0, 0.0, 0.0, all_columns=True)
    cost, _ = m.cost_matrix(logits, boxes, torch.tensor([1, -1]), boxes[:2])
    p = logits.sigmoid()
    neg = 0.75 * p ** 2 * -(1 - p).log()
    pos = 0.25 * (1 - p) ** 2 * -p.log()
    expected = torch.stack([neg.sum(1) - neg[:, 1] + pos[:, 1], neg.sum(1)], 1)
    torch.testing.assert_close(cost, expected, rtol=1e-5, atol=1e-6)


def test_label_columns():
    assert label_columns(torch.tensor([7, 2, 9]), torch.tensor([9, 4, 7])).tolist() == [2, -1, 0]


def test_asymmetric_loss_by_hand_and_ancestors_get_no_gradient():
    x = torch.tensor([[1.0, -0.5]])
    t = torch.tensor([[1.0, 0.0]])
    p = x.sigmoid()
    pm = (1 - p[0, 1] + 0.05).clamp(max=1)
    expected = -(p[0, 0].log() + (1 - pm) ** 7 * pm.log())
    torch.testing.assert_close(asymmetric_loss(x, t), expected)
    # classes 0 <- 1 <- 2 (2 is a leaf); an object of class 2: 0 and 1 are its ancestors, no loss on them
    cfg = dict(SMALL, class_names=("a", "b", "c", "d"), class_parents=(-1, 0, 1, -1), num_categories_selected=2)
    crit = build_criterion("cqdino_tiny", **cfg)
    logits = torch.zeros(1, 4, requires_grad=True)
    crit.loss_selector(logits, [{"labels": torch.tensor([2])}]).backward()
    assert logits.grad[0, 0] == 0 and logits.grad[0, 1] == 0
    assert logits.grad[0, 2] < 0 and logits.grad[0, 3] > 0


def test_loss_falls_on_a_tiny_set():
    torch.manual_seed(0)
    model = build_model("cqdino_tiny", **SMALL)
    crit = build_criterion("cqdino_tiny", **SMALL)
    images = torch.randn(2, 3, 128, 192) * 0.5
    images[0, :, 30:60, 40:80] += 2.0
    images[1, :, 50:90, 70:120] -= 2.0

    def eval_loss():  # without denoising queries: the same queries before and after
        with torch.no_grad():
            return float(crit.total(crit(model.eval()(images), targets())))

    before = eval_loss()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4)
    model.train()
    for _ in range(15):
        losses = crit(model(images, targets=targets()), targets())
        opt.zero_grad()
        crit.total(losses).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        opt.step()
    assert {"loss_ce_dn", "loss_selector", "loss_ce_enc"} <= set(losses)
    after = eval_loss()
    assert after < 0.7 * before, (before, after)


def test_paper_architecture_parameter_count():
    model = build_model("cqdino_r50_v3det")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 86_077_476
    table = 13204 * 768
    assert model.categories.queries.numel() == table
