"""Training of the shipped models: natural and PGD adversarial training (Madry et al. 2018).

``python -m explorer train --dataset mnist --variant pgd --epochs 20 --seed 0`` writes
``pretrained/mnist-pgd.pt`` (a state_dict) and ``pretrained/mnist-pgd.json`` (the model card).

Runs are seeded: the same command on the same torch version and thread count reproduces the
file. A checkpoint is written after every epoch (under ``<data root>/checkpoints``) and a
killed run resumes from it when restarted with the same command.

PGD here is an attack on the *loss* (to train and to measure robust accuracy); the attacks
on *attributions* live in ``explorer.attacks``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import data as _data
from . import models as _models

# Robust accuracy reported in every card: PGD-40, step 0.01, one random start.
EVAL_PGD_STEPS = 40
EVAL_PGD_STEP_SIZE = 0.01


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (and so the written file)."""

    dataset: str
    variant: str  # "natural" | "pgd"
    epochs: int
    seed: int = 0
    arch: str | None = None  # None: the dataset's default architecture
    batch_size: int = 128
    lr: float = 1e-3
    lr_drop_epoch: int | None = None  # lr x0.1 from this epoch on (0-based); None: 3/4 of epochs
    epsilon: float | None = None  # None: the dataset's paper epsilon
    pgd_steps: int = 7
    pgd_step_size: float | None = None  # None: 2.5 * epsilon / pgd_steps
    ramp_epochs: float = 0.0  # epsilon grows linearly from 0 over this many epochs
    threads: int = 2
    robust_eval_n: int = 10000
    out_dir: str = "pretrained"

    def resolved(self) -> "TrainConfig":
        info = _data.get_dataset(self.dataset)
        if self.variant not in ("natural", "pgd"):
            raise ValueError(f"unknown variant {self.variant!r}; allowed: natural, pgd")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        arch = self.arch or _models.default_architecture(self.dataset)
        if (self.dataset, arch) not in _models.ARCHITECTURES or self.dataset not in _models.TRAINABLE_DATASETS:
            allowed = [a for (d, a) in _models.ARCHITECTURES if d == self.dataset]
            raise ValueError(
                f"cannot train architecture {arch!r} on {self.dataset}; trainable: "
                f"{', '.join(allowed) if self.dataset in _models.TRAINABLE_DATASETS else 'none'}"
            )
        eps = info.defaults.epsilon if self.epsilon is None else float(self.epsilon)
        step = self.pgd_step_size if self.pgd_step_size is not None else 2.5 * eps / self.pgd_steps
        drop = self.lr_drop_epoch if self.lr_drop_epoch is not None else int(math.ceil(0.75 * self.epochs))
        return dataclasses.replace(self, arch=arch, epsilon=eps, pgd_step_size=step, lr_drop_epoch=drop)

    def command(self) -> str:
        """The command line that reproduces this run."""
        default = TrainConfig(self.dataset, self.variant, self.epochs)
        parts = [
            "python -m explorer train",
            f"--dataset {self.dataset}",
            f"--variant {self.variant}",
            f"--epochs {self.epochs}",
            f"--seed {self.seed}",
        ]
        for f in dataclasses.fields(self):
            if f.name in ("dataset", "variant", "epochs", "seed"):
                continue
            value = getattr(self, f.name)
            if value != getattr(default, f.name):
                parts.append(f"--{f.name.replace('_', '-')} {value}")
        return " ".join(parts)


# --------------------------------------------------------------------------------------
# PGD on the cross-entropy loss
# --------------------------------------------------------------------------------------


def pgd_linf(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilon: float,
    step_size: float,
    steps: int,
    random_start: bool = True,
    generator: torch.Generator | None = None,
    return_worst: bool = False,
):
    """ℓ∞ PGD ascending the cross-entropy of ``model`` at labels ``y``.

    x: ``(N, C, H, W)`` in [0, 1]. Returns the final iterate ``x_adv`` (same shape, within
    ``epsilon`` of x, in [0, 1]); with ``return_worst`` also a bool ``(N,)`` that is True
    where the label ``y`` was predicted at the start point and at every iterate.
    """
    x = x.detach()
    if random_start and epsilon > 0:
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
        x_adv = (x + (2 * noise - 1) * epsilon).clamp(0, 1)
    else:
        x_adv = x.clone()
    robust = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        logits = model(x_adv)
        if return_worst:
            robust &= logits.argmax(1) == y
        loss = F.cross_entropy(logits, y)
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - epsilon), x + epsilon).clamp(0, 1)
    if return_worst:
        with torch.no_grad():
            robust &= model(x_adv).argmax(1) == y
        return x_adv, robust
    return x_adv


@torch.no_grad()
def clean_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += (model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum().item()
    return correct / len(x)


def robust_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilon: float,
    steps: int = EVAL_PGD_STEPS,
    step_size: float = EVAL_PGD_STEP_SIZE,
    seed: int = 0,
    batch_size: int = 500,
) -> float:
    """Fraction of ``x`` classified correctly at the start point and every PGD iterate."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    robust = 0
    for i in range(0, len(x), batch_size):
        _, ok = pgd_linf(
            model, x[i : i + batch_size], y[i : i + batch_size], epsilon, step_size, steps,
            random_start=True, generator=gen, return_worst=True,
        )
        robust += ok.sum().item()
    return robust / len(x)


# --------------------------------------------------------------------------------------
# Training loop
# --------------------------------------------------------------------------------------


def _checkpoint_path(cfg: TrainConfig, root=None) -> Path:
    return _data.data_root(root) / "checkpoints" / f"{cfg.dataset}-{cfg.variant}.ckpt"


def _log(msg: str, log=print) -> None:
    log(f"[{time.strftime('%H:%M:%S')}] {msg}")


def train(cfg: TrainConfig, root=None, log=print, resume: bool = True) -> dict:
    """Run one training job; write the weights and card; return the card (a dict)."""
    command = cfg.command()
    cfg = cfg.resolved()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    info = _data.get_dataset(cfg.dataset)

    x_train, y_train = _data.as_tensors(_data.load_train_set(cfg.dataset, root))
    x_test, y_test = _data.as_tensors(_data.load_test_set(cfg.dataset, root))
    _log(f"{command}  train={tuple(x_train.shape)} test={tuple(x_test.shape)}", log)

    model = _models.build_architecture(cfg.dataset, cfg.arch)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    start_epoch, history, elapsed = 0, [], 0.0

    ckpt_path = _checkpoint_path(cfg, root)
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, weights_only=True)
        if state.get("config") == dataclasses.asdict(cfg):
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            gen.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            start_epoch, elapsed = state["epoch"], state["elapsed"]
            history = json.loads(state["history"])
            _log(f"resumed from {ckpt_path} at epoch {start_epoch}", log)
        else:
            _log(f"ignoring {ckpt_path}: it belongs to a different configuration", log)

    n = len(x_train)
    batches = math.ceil(n / cfg.batch_size)
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        lr = cfg.lr * (0.1 if epoch >= cfg.lr_drop_epoch else 1.0)
        for group in opt.param_groups:
            group["lr"] = lr
        model.train()
        perm = torch.randperm(n, generator=gen)
        loss_sum, correct, eps_now = 0.0, 0, 0.0
        for b in range(batches):
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            if cfg.variant == "pgd":
                progress = epoch + b / batches
                ramp = 1.0 if cfg.ramp_epochs <= 0 else min(1.0, progress / cfg.ramp_epochs)
                eps_now = cfg.epsilon * ramp
                step = cfg.pgd_step_size * ramp
                xb = pgd_linf(model, xb, yb, eps_now, step, cfg.pgd_steps, generator=gen)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
        dt = time.time() - t0
        elapsed += dt
        test_acc = clean_accuracy(model, x_test, y_test)
        row = {
            "epoch": epoch + 1,
            "lr": lr,
            "epsilon": round(eps_now, 6),
            "train_loss": round(loss_sum / n, 5),
            "train_acc": round(correct / n, 5),
            "test_clean_acc": round(test_acc, 5),
            "seconds": round(dt, 1),
        }
        history.append(row)
        _log(json.dumps(row), log)
        ckpt_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(
            {
                "config": dataclasses.asdict(cfg),
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "generator": gen.get_state(),
                "torch_rng": torch.get_rng_state(),
                "epoch": epoch + 1,
                "elapsed": elapsed,
                "history": json.dumps(history),
            },
            tmp,
        )
        tmp.replace(ckpt_path)

    model.eval()
    _log("evaluating on the full test set", log)
    clean = clean_accuracy(model, x_test, y_test)
    n_rob = min(cfg.robust_eval_n, len(x_test))
    t0 = time.time()
    robust = robust_accuracy(model, x_test[:n_rob], y_test[:n_rob], cfg.epsilon, seed=cfg.seed)
    _log(f"clean {clean:.4f}  robust(PGD-{EVAL_PGD_STEPS}, eps {cfg.epsilon}) {robust:.4f} "
         f"on {n_rob} images ({time.time() - t0:.0f}s)", log)

    out = Path(cfg.out_dir)
    if not out.is_absolute():
        out = _models.REPO_ROOT / out
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{cfg.dataset}-{cfg.variant}.pt"
    torch.save(model.state_dict(), weights)
    arch = _models.ARCHITECTURES[(cfg.dataset, cfg.arch)]
    card = {
        "dataset": cfg.dataset,
        "name": cfg.variant,
        "architecture": cfg.arch,
        "architecture_description": arch.description,
        "parameters": sum(p.numel() for p in model.parameters()),
        "normalisation": {"mean": list(info.mean), "std": list(info.std)},
        "input": f"(N, {info.channels}, {info.size[0]}, {info.size[1]}) in [0, 1]",
        "training": {
            "variant": cfg.variant,
            "command": command,
            "seed": cfg.seed,
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "optimizer": f"Adam(lr={cfg.lr}), lr x0.1 from epoch {cfg.lr_drop_epoch + 1}",
            "adversarial": None if cfg.variant == "natural" else {
                "epsilon": cfg.epsilon,
                "steps": cfg.pgd_steps,
                "step_size": cfg.pgd_step_size,
                "random_start": True,
                "epsilon_ramp_epochs": cfg.ramp_epochs,
            },
            "threads": cfg.threads,
            "wall_time_s": round(elapsed, 1),
            "history": history,
        },
        "clean_accuracy": round(clean, 5),
        "clean_accuracy_n": len(x_test),
        "robust_accuracy": round(robust, 5),
        "robust_accuracy_n": n_rob,
        "robust_eval": {
            "attack": f"PGD-{EVAL_PGD_STEPS} (ℓ∞), step {EVAL_PGD_STEP_SIZE}, one random start",
            "epsilon": cfg.epsilon,
            "counted_robust": "correct at the random start point and at every iterate",
            "images": f"the first {n_rob} test images",
        },
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "file": weights.name,
        "file_bytes": weights.stat().st_size,
        "sha256": _models.sha256_file(weights),
    }
    weights.with_suffix(".json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    _log(f"wrote {weights} and {weights.with_suffix('.json').name}", log)
    return card


def add_arguments(p) -> None:
    """Arguments of the ``train`` subcommand (argparse parser ``p``)."""
    d = TrainConfig("mnist", "natural", 1)
    p.add_argument("--dataset", required=True, help="dataset key (mnist, fashion_mnist, gtsrb, flowers102)")
    p.add_argument("--variant", required=True, choices=["natural", "pgd"])
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--arch", default=None, help="architecture key (default: the dataset's)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--lr-drop-epoch", type=int, default=None, help="lr x0.1 from this 0-based epoch (default 3/4)")
    p.add_argument("--epsilon", type=float, default=None, help="PGD training epsilon (default: the dataset's)")
    p.add_argument("--pgd-steps", type=int, default=d.pgd_steps)
    p.add_argument("--pgd-step-size", type=float, default=None, help="default 2.5*epsilon/steps")
    p.add_argument("--ramp-epochs", type=float, default=d.ramp_epochs)
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--robust-eval-n", type=int, default=d.robust_eval_n)
    p.add_argument("--out-dir", default=d.out_dir)
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--data-root", default=None, help="dataset root (default $EXPLORER_DATA or data/)")


def main(args) -> int:
    cfg = TrainConfig(
        dataset=args.dataset, variant=args.variant, epochs=args.epochs, seed=args.seed,
        arch=args.arch, batch_size=args.batch_size, lr=args.lr, lr_drop_epoch=args.lr_drop_epoch,
        epsilon=args.epsilon, pgd_steps=args.pgd_steps, pgd_step_size=args.pgd_step_size,
        ramp_epochs=args.ramp_epochs, threads=args.threads, robust_eval_n=args.robust_eval_n,
        out_dir=args.out_dir,
    )
    train(cfg, root=args.data_root, resume=not args.no_resume)
    return 0
