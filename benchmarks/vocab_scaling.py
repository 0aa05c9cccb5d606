"""CQ-DINO vocabulary scaling: latency and memory vs the number of categories C at fixed K, selector vs the rest.

    .venv/bin/python benchmarks/vocab_scaling.py
    .venv/bin/python benchmarks/vocab_scaling.py --categories 1000 13204 100000 --threads 1 \\
        --checkpoint runs/cqdino_tiny --val data/vocab-val

Each point is a randomly initialized `cqdino_tiny` (K = 30, 384x256; speed and memory do not depend on
training) over a synthetic 3-level tree of C categories (C^(1/3) roots, as many children each, the rest
leaves), taken the deployed way: exported (portable form: the category branch and the selector's first
query projection folded to constants), built by `detrt build --backend onnxruntime`, run by ONNX Runtime
on the CPU with the runtime's session options and a pinned thread count.

- Latency: the points interleaved in one process, wall time of `session.run` (batch 1).
- Split: the same sessions with ONNX Runtime's profiler; each kernel is the selector's when a tensor it reads
  or writes has C in its shape (category scoring, the top-K over C, the gather of K rows), post-selection
  when it comes after the selector in the graph ONNX Runtime ran, before (backbone, input projections,
  the selector's image tokens) otherwise. Per run the profiled kernel times summed; their median over runs.
- Memory: each point loaded and run (3 batches) in its own process (scaling.py's), peak resident - before.
- Selector cost per category: the slope between the smallest and the largest C of the selector's profiled
  time and of the exported graph's FLOPs (roofline.count_graph: multiply-adds), against the arithmetic lower
  bound once everything parameter-only is a constant (`selector_flops`).
- Hierarchical selection (--checkpoint, a trained cqdino_tiny, and --val, its validation set in COCO form):
  score the roots, keep the best `beam` of them, score their children, and so on; the top-K of the scored
  categories against the exhaustive top-K (recall), and the share of categories scored. The selector
  scores each category independently of the others (cross-attention to the image only), so a category's
  score is the same in the beam and in the exhaustive pass: both come from one exhaustive pass here.
Writes benchmarks/results/vocab_scaling.json and the section of benchmarks/RESULTS.md.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import scaling  # noqa: E402

CONFIG = "cqdino_tiny"
BEAMS = ((2, 2, 2), (4, 8, 16), (6, 12, 24), (8, 16, 32), (8, 32, 64))  # parents kept per level, top-down


def synthetic_tree(c):
    """Parents of a 3-level tree of c categories: f = round(c^(1/3)) roots, f children each, the other
    c - f - f^2 categories leaves spread evenly over those children."""
    f = round(c ** (1 / 3))
    mids = range(f, f + f * f)
    return [-1] * f + [r for r in range(f) for _ in range(f)] + [mids[i % len(mids)] for i in range(c - f - f * f)]


def artifact(c):
    """(exported ONNX, ONNX Runtime artifact) of the random cqdino_tiny over c categories, made once."""
    import torch

    from detrt.compile.build import build
    from detrt.compile.export import export_model_to
    from detrt.models import build_model

    d = common.CACHE / f"vocab-{CONFIG}-c{c}"
    exported, built = d / "export.onnx", d / "fp32.onnx"
    if not built.is_file():
        torch.manual_seed(0)
        model = build_model(CONFIG, class_names=tuple(f"category {i}" for i in range(c)),
                            class_parents=tuple(synthetic_tree(c))).eval()
        d.mkdir(parents=True, exist_ok=True)
        export_model_to(model, model.config, exported, max_batch=1, log=common.log)
        build(exported, built, precision="fp32", backend="onnxruntime", log=common.log)
    return exported, built


def selector_flops(cfg, tokens):
    """Multiply-add FLOPs one category needs per image once everything parameter-only is a constant: per
    selector layer attention logits and values over `tokens` image tokens (2 D T each), the output
    projection (D^2) and the FFN (2 D F); the query projection (D^2) in every layer but the first (the first
    one's is a constant); the score (D). Each multiply-add counted 2."""
    d, f, layers = cfg.category_dim, cfg.selector_ffn, cfg.selector_layers
    return 2 * (layers * (2 * d * tokens + d * d + 2 * d * f) + (layers - 1) * d * d + d)


def image_tokens(cfg):
    """The selector's image tokens: the stride-32 positions and the global one."""
    h, w = cfg.input_size
    return (h // 32) * (w // 32) + 1


def _shapes(args):
    return [v for key in ("input_type_shape", "output_type_shape") for t in args.get(key, []) for v in t.values()]


def sides(model_proto, selector_nodes):
    """{node name: "before" | "post"} of the nodes not in `selector_nodes`: post when downstream of one."""
    producer = {o: n for n in model_proto.graph.node for o in n.output}
    side = {}
    for n in model_proto.graph.node:  # ONNX Runtime writes its graph in topological order
        upstream = [producer[i] for i in n.input if i in producer]
        side[n.name] = "post" if any(u.name in selector_nodes or side.get(u.name) == "post" for u in upstream) \
            else "before"
    return side


def measure(points, runs, warmup, threads):
    """Interleaved wall time of plain sessions, then the profiled split, of every (c, artifact) point; the first
    `warmup` runs of each are not counted (ONNX Runtime's arena grows over the first two at large C)."""
    import onnx
    import onnxruntime as ort

    from detrt.runtime.ort_backend import session_options

    rng = np.random.default_rng(0)
    images = rng.standard_normal((1, 3, *input_hw(points[0][1])), dtype=np.float32)
    plain = [ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
             for _, path in points]
    wall = [[] for _ in points]
    for r in range(warmup + runs):
        for s, times in zip(plain, wall):
            start = time.perf_counter()
            s.run(None, {"images": images})
            if r >= warmup:
                times.append(1e3 * (time.perf_counter() - start))
    del plain
    rows = []
    with tempfile.TemporaryDirectory(prefix="detrt-vocab-") as tmp:
        profiled = []
        for c, path in points:
            model = onnx.load(str(path))
            for i, node in enumerate(model.graph.node):  # profile events are named by node
                node.name = node.name or f"node{i}_{node.op_type}"
            so = session_options(threads)
            so.enable_profiling, so.profile_file_prefix = True, f"{tmp}/c{c}"
            so.optimized_model_filepath = f"{tmp}/c{c}.onnx"  # the graph ONNX Runtime runs, node names as profiled
            profiled.append(ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]))
        for r in range(warmup + runs):
            for s in profiled:
                s.run(None, {"images": images})
        for (c, _), s, times in zip(points, profiled, wall):
            events = common.kernel_events(s, warmup + runs, warmup)
            per_run = len(events) // runs
            selector = {e["name"][:-len("_kernel_time")] for e in events
                        if any(c in shape for shape in _shapes(e["args"]))}
            side = sides(onnx.load(f"{tmp}/c{c}.onnx", load_external_data=False), selector)
            split, ops = np.zeros((runs, 3)), {}  # per run: selector, before, post
            for i, e in enumerate(events):
                name = e["name"][:-len("_kernel_time")]
                where = "selector" if name in selector else side.get(name, "before")
                split[i // per_run, ("selector", "before", "post").index(where)] += e["dur"] / 1e3
                if name in selector:
                    ops[e["args"]["op_name"]] = ops.get(e["args"]["op_name"], 0.0) + e["dur"] / 1e3 / runs
            ms = dict(zip(("selector", "before", "post"), np.median(split, 0).tolist()))  # bursts of load: medians
            rows.append({"categories": c, "wall_ms": percentiles(times), "kernel_ms": ms,
                         "selector_nodes": len(selector), "selector_ops_ms": ops})
    return rows


def input_hw(path):
    """(H, W) of an artifact's input, from its manifest."""
    from detrt.manifest import load_manifest

    return tuple(load_manifest(path).input_size)


def percentiles(times):
    from detrt.bench.measure import percentile

    return {"p50": percentile(times, 50), "p90": percentile(times, 90), "runs": len(times)}


def beam_select(scores, parents, beam, k):
    """Top-down: score the roots, keep the best beam[0]; score their children, keep the best beam[1]; ... The
    top-k of every scored category. scores [C] (only the scored ones are read); returns (ids, scored count)."""
    children = {}
    for i, p in enumerate(parents):
        children.setdefault(p, []).append(i)
    frontier, scored = children[-1], list(children[-1])
    for width in beam:
        kept = sorted(frontier, key=lambda i: -scores[i])[:width]
        frontier = [ch for p in kept for ch in children.get(p, ())]
        scored += frontier
    scored = np.array(scored)
    return scored[np.argsort(-scores[scored], kind="stable")[:k]], len(scored)


def beam_recall(checkpoint, val):
    """Recall of the exhaustive top-K (and of the ground-truth categories) by each beam, on the trained model;
    and why: the depths the exhaustive top-K comes from, how many categories of each depth its members and
    their ancestors span (what a beam would have to keep: with perfect parent scores it would still score the
    roots and the children of every spanned parent), and where each ground-truth category's ancestors rank
    among the categories of their depth (0 first, 1 last, 0.5 what a random score gives)."""
    import cv2
    import torch

    from detrt.data.coco import read_coco
    from detrt.data.preprocess import Preprocessor
    from detrt.models.checkpoint import model_from_checkpoint

    model, cfg = model_from_checkpoint(checkpoint)
    model.eval()
    records, _ = read_coco(Path(val) / "annotations.json", Path(val) / "images", cfg.vocabulary)
    prep = Preprocessor(cfg.input_size, cfg.mean, cfg.std)  # the runtime's letterbox
    vocab, k = cfg.vocabulary, cfg.num_categories_selected
    depth = vocab.depths
    found = {beam: [0, 0, 0] for beam in BEAMS}  # exhaustive top-K kept, ground truth kept, scored
    gt_total, gt_exhaustive = 0, 0
    topk_depths, span = np.zeros(depth.max() + 1), np.zeros(depth.max())
    children, least = np.bincount([p for p in vocab.parents if p >= 0], minlength=len(vocab)), 0
    ancestor_rank = [[] for _ in range(depth.max())]
    with torch.no_grad():
        categories = model.categories()
        for rec in records:
            images, _ = prep([cv2.imread(str(rec.image_path))])
            scores = model.selector(categories, model.backbone(torch.from_numpy(images))[-1])[0][0].numpy()
            top = np.argsort(-scores, kind="stable")[:k]
            topk_depths += np.bincount(depth[top], minlength=len(topk_depths))
            exhaustive, truth = set(top.tolist()), set(int(x) for x in rec.labels)
            spanned = list({a for t in top for a in vocab.ancestors(int(t))})
            span += np.bincount(depth[spanned], minlength=len(span))
            least += (depth == 0).sum() + children[spanned].sum()
            gt_total += len(truth)
            gt_exhaustive += len(truth & exhaustive)
            for a in (a for t in truth for a in vocab.ancestors(t)):
                level = depth == depth[a]
                ancestor_rank[depth[a]].append((scores[level] > scores[a]).sum() / (level.sum() - 1))
            for beam in BEAMS:
                ids, scored = beam_select(scores, vocab.parents, beam, k)
                found[beam][0] += len(exhaustive & set(ids.tolist()))
                found[beam][1] += len(truth & set(ids.tolist()))
                found[beam][2] += scored
    n = len(records)
    return {"checkpoint": str(checkpoint), "images": n, "k": k, "categories": len(vocab),
            "gt_recall_exhaustive": gt_exhaustive / gt_total, "topk_depth_share": (topk_depths / (n * k)).tolist(),
            "topk_span": (span / n).tolist(), "least_scored_share": float(least / (n * len(vocab))),
            "ancestor_rank": [float(np.mean(r)) for r in ancestor_rank],
            "beams": [{"beam": list(b), "topk_recall": f[0] / (n * k), "gt_recall": f[1] / gt_total,
                       "scored_share": f[2] / (n * len(vocab))} for b, f in found.items()]}


def beam_at(c, ns_per_category):
    """Categories each beam scores on the synthetic tree of c categories, and its selector time projected from
    the measured cost per category (not measured: no beam graph is built; between-level top-k not counted)."""
    scores = np.random.default_rng(0).random(c)
    parents = synthetic_tree(c)
    rows = []
    for beam in BEAMS:
        scored = beam_select(scores, parents, beam, 1)[1]
        rows.append({"beam": list(beam), "scored": scored, "selector_ms": scored * ns_per_category / 1e6})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--categories", type=int, nargs="+", default=[1000, 13204, 100000])
    parser.add_argument("--runs", type=int, default=10, help="measured runs per point (10)")
    parser.add_argument("--warmup", type=int, default=2, help="uncounted runs per point first (2)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (1)")
    parser.add_argument("--checkpoint", help="a trained cqdino_tiny: beam recall on --val")
    parser.add_argument("--val", help="its validation set (annotations.json + images/)")
    parser.add_argument("--note", help="a line printed in bold at the top of the RESULTS.md section")
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    from detrt.bench.device import device_facts
    from detrt.bench.roofline import count_graph, measure_peak
    from detrt.models import get_config

    load = common.load_average()
    cs = sorted(args.categories)
    files = {c: artifact(c) for c in cs}
    common.log(f"vocab_scaling.py: {len(cs)} points interleaved, {args.runs} runs each, {args.threads} thread(s)")
    rows = measure([(c, files[c][1]) for c in cs], args.runs, args.warmup, args.threads)
    video = common.synthetic_video()
    cfg = get_config(CONFIG)
    for r in rows:
        common.log(f"vocab_scaling.py: memory of C = {r['categories']}")
        r.update(scaling.memory_of(files[r["categories"]][1], args, video))
        r["gflop"] = count_graph(str(files[r["categories"]][0]), 1).flops / 1e9
    first, last = rows[0], rows[-1]
    span = last["categories"] - first["categories"]
    r50 = get_config("cqdino_r50_v3det")
    r50_tokens = image_tokens(r50)
    per_category = {"ns": 1e6 * (last["kernel_ms"]["selector"] - first["kernel_ms"]["selector"]) / span,
                    "graph_flops": 1e9 * (last["gflop"] - first["gflop"]) / span,
                    "lower_bound_flops": selector_flops(cfg, image_tokens(cfg)), "image_tokens": image_tokens(cfg),
                    "r50": {"lower_bound_flops": selector_flops(r50, r50_tokens), "image_tokens": r50_tokens,
                            "categories": r50.num_classes, "input_size": list(r50.input_size)}}
    peak = measure_peak(threads=args.threads)
    beam = beam_recall(args.checkpoint, args.val) if args.checkpoint else None
    facts = device_facts(args.threads)
    result = {"device": facts, "peak": peak, "threads": args.threads, "warmup": args.warmup, "points": rows,
              "per_category": per_category, "beam": beam, "beam_cost": beam_at(last["categories"], per_category["ns"])}
    lines = markdown(result, argv, load, args.note)
    print("\n".join(lines))
    common.write_outputs("vocab_scaling", result, "\n".join(lines) + "\n")


def markdown(result, argv, load, note):
    rows, pc, facts = result["points"], result["per_category"], result["device"]
    r50 = pc["r50"]
    lines = common.header("CQ-DINO latency and memory vs vocabulary size (CPU, batch 1, fixed K)",
                          "vocab_scaling.py", argv, facts,
                          f"randomly initialized {CONFIG} (K = 30, 384x256) over synthetic 3-level trees (speed and "
                          "memory only)", note, load)
    lines += [f"ONNX Runtime, portable export built by `detrt build --backend onnxruntime`, {result['threads']} "
              f"thread(s), {rows[0]['wall_ms']['runs']} runs per point interleaved after {result['warmup']} uncounted "
              "ones. Split: ONNX Runtime's profiled kernel time, median over the runs: selector = every kernel "
              "reading or writing a tensor with C in its shape (category scoring, top-K over C, the gather of K "
              "rows); post-selection = everything "
              "downstream of it; before = the rest (backbone, input projections, the selector's image tokens). "
              "Memory: peak resident (VmHWM) - resident before loading, each point in its own process. Ratios vs "
              "the first row.  ", "",
              "| C | wall p50 ms | p90 ms | selector ms | post-selection ms | post ratio | before ms | memory MB "
              "| memory ratio | GFLOP |", "|---|---|---|---|---|---|---|---|---|---|"]
    f = rows[0]
    for r in rows:
        k = r["kernel_ms"]
        lines.append(f"| {r['categories']:,} | {r['wall_ms']['p50']:.1f} | {r['wall_ms']['p90']:.1f} | "
                     f"{k['selector']:.1f} | {k['post']:.1f} | {k['post'] / f['kernel_ms']['post']:.2f}x | "
                     f"{k['before']:.1f} | {r['memory_mb']:.0f} | {r['memory_mb'] / f['memory_mb']:.2f}x | "
                     f"{r['gflop']:.2f} |")
    gflops = pc["graph_flops"] / pc["ns"]
    lines += ["", f"Selector per category (slope from C = {rows[0]['categories']:,} to {rows[-1]['categories']:,}): "
                  f"{pc['ns']:.0f} ns and {pc['graph_flops'] / 1e3:.1f} kFLOP in the exported graph (multiply-adds), "
                  f"against a lower bound of {pc['lower_bound_flops'] / 1e3:.1f} kFLOP once everything parameter-only "
                  f"is a constant ({pc['image_tokens']} image tokens); {gflops:.1f} GFLOP/s, "
                  f"{100 * gflops / result['peak']['matmul_gflops']:.0f}% of this machine's measured matmul peak "
                  f"({result['peak']['matmul_gflops']:.0f} GFLOP/s on {result['threads']} thread(s)). The selector's "
                  f"time at C = {rows[-1]['categories']:,} by operator: " + ", ".join(
                      f"{op} {100 * t / rows[-1]['kernel_ms']['selector']:.0f}%" for op, t in
                      sorted(rows[-1]["selector_ops_ms"].items(), key=lambda kv: -kv[1])
                      if t >= 0.005 * rows[-1]["kernel_ms"]["selector"]) + ".",
              "", f"cqdino_r50_v3det's selector (the paper's widths, {r50['input_size'][1]}x{r50['input_size'][0]}, "
                  f"{r50['image_tokens']:,} image tokens), by the same count, not timed: "
                  f"{r50['lower_bound_flops'] / 1e6:.1f} MFLOP per category, "
                  f"{r50['lower_bound_flops'] * r50['categories'] / 1e9:.0f} GFLOP per image at its "
                  f"{r50['categories']:,} categories."]
    beam, last = result["beam"], rows[-1]
    if beam:
        depths = ", ".join(f"{100 * v:.0f}%" for v in beam["topk_depth_share"])
        ranks = ", ".join(f"{v:.2f}" for v in beam["ancestor_rank"])
        span = ", ".join(f"{v:.1f}" for v in beam["topk_span"])
        lines += ["", f"Hierarchical selection (beam: score the roots, keep the best b1, score their children, keep "
                      f"the best b2, ...) on the trained model {beam['checkpoint']}, {beam['images']} validation "
                      f"images, C = {beam['categories']:,}, K = {beam['k']}. The exhaustive top-K holds "
                      f"{100 * beam['gt_recall_exhaustive']:.1f}% of the ground-truth categories; it comes from depths "
                      f"0..3 in shares {depths}, and its ancestors span {span} categories of depths 0..2 (per "
                      f"image): even with perfect parent scores a beam keeping all of it scores "
                      f"{100 * beam['least_scored_share']:.1f}% of the categories. A ground-truth category's "
                      f"ancestors rank, among their depth's "
                      f"categories, at {ranks} on average (depths 0..2; 0 first, 0.5 random).", "",
                  "| beam b1 / b2 / b3 | exhaustive top-K kept | ground truth kept | categories scored |",
                  "|---|---|---|---|"]
        lines += [f"| {' / '.join(map(str, b['beam']))} | {100 * b['topk_recall']:.1f}% | {100 * b['gt_recall']:.1f}% "
                  f"| {100 * b['scored_share']:.1f}% |" for b in beam["beams"]]
    fixed = last["kernel_ms"]["before"] + last["kernel_ms"]["post"]
    lines += ["", f"Beam cost at C = {last['categories']:,} (the synthetic tree; projected, not measured: scored "
                  f"categories x the measured {pc['ns']:.0f} ns per category, plus the measured before + post "
                  f"{fixed:.1f} ms; the selector scores each category independently, so its cost is per category). "
                  f"Exhaustive: selector {last['kernel_ms']['selector']:.1f} ms.", "",
              "| beam b1 / b2 | categories scored | share | selector ms | total kernel ms |", "|---|---|---|---|---|"]
    lines += [f"| {' / '.join(map(str, b['beam'][:2]))} | {b['scored']:,} | "
              f"{100 * b['scored'] / last['categories']:.2f}% | {b['selector_ms']:.1f} | "
              f"{b['selector_ms'] + fixed:.1f} |" for b in result["beam_cost"]]
    return lines


if __name__ == "__main__":
    main()
