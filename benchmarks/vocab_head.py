"""CQ-DINO's claim on the synthetic vast vocabulary: category queries vs a plain C-way classification head.

    .venv/bin/python benchmarks/vocab_head.py --steps 400
    .venv/bin/python benchmarks/vocab_head.py --steps 4000 --model cqdino &   # the two side by side,
    .venv/bin/python benchmarks/vocab_head.py --steps 4000 --model cway        # one thread each

Both detectors train on the same `detrt synth --kind vocab` images (seed 1; 1,608 categories, long-tailed),
for the same optimizer steps, seed, batch and input size, from scratch, and are evaluated on held-out images
(seed 2) with COCO AP at 100 and 300 detections per image and AP on the rare categories (<= 10 training
images). "C-way head" is `deformable_detr_r18_tiny` with cqdino_tiny's encoder depth: the same backbone,
widths, decoder layers and queries, a Linear(d, C) focal head instead of category queries, the image-guided
selector, the fusion blocks and denoising queries. Writes benchmarks/results/vocab_head.json and the
section of benchmarks/RESULTS.md; a run of one --model keeps the other's figures when both ran on the same
data, steps and seed. Each model trains on one thread: torch's eager ops collapse when two multi-threaded
processes share the cores.
"""

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

MODELS = {"cqdino": ("CQ-DINO (cqdino_tiny)", "cqdino_tiny", {}),
          "cway": ("C-way head (deformable_detr_r18_tiny, 2 encoder layers)", "deformable_detr_r18_tiny",
                   {"enc_layers": 2})}


def vocab_set(num, seed):
    from detrt.data.synthetic_vocab import synthesize_vocab

    d = common.CACHE / f"vocab-s{seed}-n{num}"
    if not (d / "annotations.json").is_file():
        synthesize_vocab(d, num=num, seed=seed, progress=False, overwrite=True)
    return d


def selector_recall(checkpoint, data_dir):
    """Share of the objects of `data_dir` whose category is among the K the selector picked for the image: what
    CQ-DINO can classify at best (an unselected category has no column)."""
    import torch

    from detrt.models.checkpoint import model_from_checkpoint
    from detrt.training.dataset import eval_loader, read_records

    model, cfg = model_from_checkpoint(checkpoint)
    model.eval()
    records = read_records(data_dir / "annotations.json", data_dir / "images", "validation",
                           vocabulary=cfg.vocabulary)[0]
    found = total = 0
    with torch.no_grad():
        for images, targets, _ in eval_loader(records, cfg, batch_size=8):
            for selected, target in zip(model(images)["category_ids"], targets):
                found += int(torch.isin(target["labels"], selected).sum())
                total += len(target["labels"])
    return found / total


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", type=int, default=1000, help="training images")
    p.add_argument("--val", type=int, default=100, help="validation images")
    p.add_argument("--steps", type=int, default=400, help="optimizer steps of each model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", choices=sorted(MODELS), action="append",
                   help="train only this one (repeatable; default: both)")
    args = p.parse_args(argv)

    import torch

    from detrt.bench.device import device_facts
    from detrt.models import get_config
    from detrt.training.loop import fit
    from detrt.training.options import TrainOptions

    torch.set_num_threads(1)
    load = common.load_average()
    train, val = vocab_set(args.train, 1), vocab_set(args.val, 2)
    result = {"steps": args.steps, "seed": args.seed, "train_images": args.train, "val_images": args.val, "runs": {}}
    for key in args.model or sorted(MODELS):
        name, config, changes = MODELS[key]
        cfg = get_config(config, input_size=(160, 160), **changes)  # the synthetic images' size
        out = common.CACHE / "vocab-head" / cfg.name
        shutil.rmtree(out, ignore_errors=True)
        common.log(f"training {name} for {args.steps} steps")
        summary = fit(TrainOptions(cfg, str(train / "annotations.json"), str(train / "images"),
                                   val_data=str(val / "annotations.json"), val_images=str(val / "images"),
                                   max_steps=args.steps, seed=args.seed, output=str(out), workers=1,
                                   eval_every=10 ** 6, progress=False))
        m = summary["metrics"]
        result["runs"][name] = {"wall_s": summary["wall_s"], **{k: m[k] for k in m if k.startswith("AP")}}
        if cfg.is_cqdino:
            result["runs"][name]["selector_recall"] = selector_recall(out / "last", val)
    json_path = common.RESULTS / "vocab_head.json"  # read now: the other model may have finished meanwhile
    if json_path.is_file():
        earlier = json.loads(json_path.read_text())
        if all(earlier.get(k) == v for k, v in result.items() if k != "runs"):
            result["runs"] = {**earlier["runs"], **result["runs"]}
    result["runs"] = {MODELS[k][0]: result["runs"][MODELS[k][0]] for k in sorted(MODELS)
                      if MODELS[k][0] in result["runs"]}

    argv = argv if argv is not None else sys.argv[1:]
    common.write_outputs("vocab_head", result, section(result, argv, device_facts(), load))


def section(result, argv, facts, load):
    """benchmarks/RESULTS.md's section on `result` (the JSON this script writes)."""
    def pct(v):
        return f"{100 * v:.2f}" if v is not None else "-"

    lines = common.header("category queries vs a C-way head on the synthetic vast vocabulary", "vocab_head.py",
                          argv, facts, load=load)
    lines += ["", f"{result['train_images']} training images (seed 1), {result['val_images']} held out (seed 2), "
              f"1,608 categories; {result['steps']} steps of batch 2 from scratch, seed {result['seed']}, 160x160, "
              "one thread each.", "",
              "| model | AP@100 | AP@300 | AP rare @100 | AP rare @300 | AP50@100 | selector recall | "
              "training wall-clock |", "|---|---|---|---|---|---|---|---|"]
    for name, r in result["runs"].items():
        lines.append(f"| {name} | {pct(r['AP@100'])} | {pct(r['AP@300'])} | {pct(r['APr@100'])} | "
                     f"{pct(r['APr@300'])} | {pct(r['AP50@100'])} | {pct(r.get('selector_recall'))} | "
                     f"{r['wall_s'] / 60:.1f} min |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
