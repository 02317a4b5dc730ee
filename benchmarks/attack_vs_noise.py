"""Are the attacks at least as strong as random noise? (restarts, random-sign candidate)

On the shipped models (MNIST and Fashion-MNIST, natural and PGD), at the paper's ε and
defaults plus ``restarts`` (default 3, as the authors), for each attribution method: mean top-k
intersection between the original map and the map of x′ under one-shot random sign noise, the
authors' random walk (best of P random ±α steps, with restarts), the top-k attack and the
mass-centre attack; and the share of images where no label-preserving x′ was found (x′ = x).
Only correctly classified test images are attacked (as the authors). The loss uses the paper's
attack k'; x′ is selected by top-k intersection at the paper's evaluation k (``--select-at eval``,
default; ``attack``: at k'). The table gives top-k intersection at the selection k (never above
the noise's by construction, image by image) and at k'.

One JSON line per (model, method, attack) is appended to ``--out`` as soon as it is done, so a
long run can be stopped and summarised (``--summary``) at any point.

    python benchmarks/attack_vs_noise.py --data-root /tmp/explorer-data --n 32 --n-ig 6 \
        --out /tmp/attack_vs_noise.jsonl
    python benchmarks/attack_vs_noise.py --summary /tmp/attack_vs_noise.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer import attacks, data, metrics, models  # noqa: E402

MODELS = ("mnist/natural", "mnist/pgd", "fashion_mnist/natural", "fashion_mnist/pgd")
ATTACK_NAMES = {"random_sign": "random sign", "random_walk": "random walk", "topk": "top-k",
                "mass_center": "mass-centre"}


def correct_images(net, dataset: str, n: int, root):
    """The first ``n`` correctly classified test images (and their test-set indices)."""
    x, y = data.as_tensors(data.load_test_set(dataset, root=root), limit=2 * n + 64)
    with torch.no_grad():
        ok = net(x).argmax(1) == y
    idx = torch.nonzero(ok).view(-1)[:n]
    return x[idx], idx.tolist()


def run_one(net, x, dataset, method, mparams, attack, restarts, seed, batch, select_at):
    paper = data.DATASETS[dataset].defaults
    k_eval = paper.eval_k
    over = {"restarts": restarts, "seed": seed, "select_k": k_eval if select_at == "eval" else 0}
    p = attacks.attack_params(attack, paper, over)
    k_sel = p["select_k"] or p["attack_k"]
    rows = {"sel": [], "attack_k": [], "found": [], "noise_won": [], "flip": []}
    t0 = time.perf_counter()
    for s in range(0, len(x), batch):
        r = attacks.attack(net, x[s:s + batch], attack=attack, method=method,
                           method_params=mparams, **p)
        rows["sel"] += r.history[:, -1].tolist()
        rows["attack_k"] += metrics.compare(r.map_orig, r.map_adv, p["attack_k"], paper.w)[
            "topk_intersection"].tolist()
        rows["found"] += r.found.tolist()
        rows["noise_won"] += r.noise_won.tolist()
        rows["flip"] += r.flip_share.tolist()
    return rows, time.perf_counter() - t0, k_sel, p["attack_k"]


def mean(v):
    return sum(v) / len(v) if v else float("nan")


def summarise(path: Path) -> None:
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    by = {}
    for r in recs:
        by.setdefault((r["model"], r["method"]), {})[r["attack"]] = r
    print("Mean top-k intersection (lower = stronger) at the selection k (the selection measure) "
          "and at the attack k', share of images with no label-preserving x′, share where the "
          "random-sign candidate won, mean label-flip share of the raw iterates, images where "
          "the attack's selection measure is ≤ the noise's.\n")
    print("| model | method | n | attack | top-k ∩ @ selection k | top-k ∩ @k' | no x′ | "
          "noise won | flips | ≤ noise | time s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    verdicts = []
    for (model, method), att in by.items():
        noise = att.get("random_sign")
        for a in ("random_sign", "random_walk", "topk", "mass_center"):
            if a not in att:
                continue
            r = att[a]
            le = ""
            if noise is not None and a != "random_sign":
                per = sum(x <= y for x, y in zip(r["sel"], noise["sel"]))
                le = f"{per}/{len(r['sel'])}"
                if a in ("topk", "mass_center"):
                    verdicts.append((model, method, a, mean(r["sel"]) <= mean(noise["sel"]),
                                     mean(r["attack_k"]) <= mean(noise["attack_k"]),
                                     1 - mean(r["found"])))
            print(f"| {model} | {method} | {len(r['sel'])} | {ATTACK_NAMES[a]} | "
                  f"{mean(r['sel']):.3f} (k={r['k_sel']}) | "
                  f"{mean(r['attack_k']):.3f} (k'={r['attack_k_value']}) | "
                  f"{100 * (1 - mean(r['found'])):.1f} % | "
                  f"{100 * mean(r['noise_won']):.1f} % | {mean(r['flip']):.3f} | {le} | "
                  f"{r['seconds']:.0f} |")
    print("\nTargets: each attack lowers the mean top-k intersection at least as much as random "
          "sign noise; no-x′ share under 5 %.")
    for model, method, a, ok_sel, ok_eval, nox in verdicts:
        print(f"- {model} {method} {ATTACK_NAMES[a]}: mean ≤ noise's at the selection k "
              f"{'yes' if ok_sel else 'NO'}, at k' {'yes' if ok_eval else 'NO'}; "
              f"no x′ {100 * nox:.1f} % "
              f"{'(under 5 %)' if nox < 0.05 else '(NOT under 5 %)'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--methods", nargs="+", default=["saliency", "integrated_gradients"])
    ap.add_argument("--attacks", nargs="+", default=list(ATTACK_NAMES))
    ap.add_argument("--ig-attacks", nargs="+", default=["random_sign", "topk", "mass_center"],
                    help="attacks run for integrated_gradients (slow on CPU)")
    ap.add_argument("--n", type=int, default=64, help="images per model (saliency)")
    ap.add_argument("--n-ig", type=int, default=16, help="images per model (IG)")
    ap.add_argument("--ig-steps", type=int, default=10, help="IG path steps (attack and measure)")
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument("--select-at", choices=("eval", "attack"), default="eval",
                    help="k of the selection measure: the evaluation k (default) or the attack k'")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--out", default="attack_vs_noise.jsonl")
    ap.add_argument("--summary", metavar="JSONL", help="only print the tables of a finished run")
    args = ap.parse_args()
    if args.summary:
        summarise(Path(args.summary))
        return
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    done = set()
    if out.exists():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["model"], r["method"], r["attack"]))
    # Saliency on every model first, then IG (the slow part).
    for method in args.methods:
        ig = method == "integrated_gradients"
        mparams = {"steps": args.ig_steps} if ig else None
        n = args.n_ig if ig else args.n
        for spec in args.models:
            dataset, name = spec.split("/")
            net = models.load(dataset, name)
            x, idx = correct_images(net, dataset, n, args.data_root)
            for a in (args.ig_attacks if ig else args.attacks):
                if (spec, method, a) in done:
                    continue
                rows, secs, k_sel, k_att = run_one(net, x, dataset, method, mparams, a,
                                                    args.restarts, args.seed, args.batch,
                                                    args.select_at)
                rec = dict(model=spec, method=method, attack=a, n=len(x), indices=idx,
                           restarts=args.restarts, method_params=mparams, k_sel=k_sel,
                           attack_k_value=k_att, seconds=secs, **rows)
                with out.open("a") as f:
                    f.write(json.dumps(rec) + "\n")
                print(f"{spec} {method} {a}: top-k ∩ @k' {mean(rows['sel']):.3f}, "
                      f"no x′ {100 * (1 - mean(rows['found'])):.1f} %, {secs:.0f} s", flush=True)
    summarise(out)


if __name__ == "__main__":
    main()
