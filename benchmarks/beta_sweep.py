"""Which surrogate β gives the strongest top-k attack? (chooses attacks.DEFAULT_BETA)

Runs the top-k attack (Simple Gradients by default) with the dataset's paper settings for each β
on the first correctly classified test images, and prints the mean top-k intersection (lower is
a stronger attack) at the attack's k' and at the paper's evaluation k, plus LENS recall and the
fraction of images where a label-preserving perturbation was found.

    python benchmarks/beta_sweep.py                      # shipped mnist/natural model
    python benchmarks/beta_sweep.py --model pgd --n 64 --betas 1 2 5 10 30
    python benchmarks/beta_sweep.py --state my_small_cnn.pt   # a small_cnn state_dict instead
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer import data, metrics, models  # noqa: E402
from explorer.attacks import attack  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--model", default="natural")
    ap.add_argument("--state", help="state_dict of the dataset's default architecture to use "
                                    "instead of a shipped model")
    ap.add_argument("--method", default="saliency")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--betas", type=float, nargs="+", default=[1, 2, 5, 10, 30])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    info = data.get_dataset(args.dataset)
    d = info.defaults
    if args.state:
        net = models.build_architecture(args.dataset, models.default_architecture(args.dataset))
        net.load_state_dict(torch.load(args.state, weights_only=True))
        net.eval()
        name = f"{args.dataset}/{Path(args.state).name}"
    else:
        net = models.load(args.dataset, args.model)
        name = f"{args.dataset}/{args.model}"
    x, y = data.as_tensors(data.load_test_set(args.dataset), limit=4 * args.n)
    with torch.no_grad():
        ok = net(x).argmax(1) == y
    x = x[ok][: args.n]
    steps = args.steps or d.steps
    print(f"model {name}, {len(x)} correctly classified test images, method {args.method}, "
          f"ε={d.epsilon:.4g}, α={d.step_size:.4g}, P={steps}, k'={d.attack_k}, eval k={d.eval_k}, "
          f"w={d.w}")
    print(f"{'beta':>6} {'topk@kp':>8} {'topk@k':>8} {'lensrec@k':>9} {'found':>6} {'time s':>7}")
    for beta in args.betas:
        t0 = time.perf_counter()
        r = attack(net, x, method=args.method, attack="topk", epsilon=d.epsilon,
                   step_size=d.step_size, steps=steps, attack_k=d.attack_k, w=d.w, beta=beta)
        dt = time.perf_counter() - t0
        at_kp = r.history[:, -1].mean().item()
        m = metrics.compare(r.map_orig, r.map_adv, d.eval_k, d.w)
        print(f"{beta:>6g} {at_kp:>8.3f} {m['topk_intersection'].mean().item():>8.3f} "
              f"{m['lens_recall'].mean().item():>9.3f} {r.found.float().mean().item():>6.2f} "
              f"{dt:>7.1f}", flush=True)


if __name__ == "__main__":
    main()
