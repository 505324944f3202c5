"""Quality per CPU-second of the GAN recipes: paper (WGAN-GP) vs modern (hinge + R1 + DiffAugment).

For each named recipe (mode × image size) it trains GDGAN stage 1 then stage 2 on a phantom
with NIH's label mix, single-threaded, and at fixed step intervals scores the EMA generator
with a judge trained on the real training split only (gender, view, Cardiomegaly from the
phantom's true CTR > 0.5, and the CTR itself):

- stage 1 / stage 2: gender and view accuracy of the requested labels (balanced groups);
- stage 2: Cardiomegaly AUC of requested positives vs negatives from the *same* stage-1 images,
  and the shares of requested positives / negatives whose measured CTR is above 0.5;
- both: relative FD (FD(synthetic, test) / FD(real train subset, test)), precision and recall
  (k-NN manifolds, Kynkäänniemi et al. 2019) in the judge's features.

The x-axis is training CPU-seconds (``time.process_time``, scoring excluded), so the curves
compare recipes fairly under any machine load. Recipes run side by side in one invocation
(``--jobs 2`` uses both cores, one process per recipe).

    python benchmarks/bench_recipe.py --out bench-out/recipe            # the four default recipes
    python benchmarks/bench_recipe.py --recipes modern-32 --s1 600 --s2 300
    python benchmarks/bench_recipe.py --smoke                           # seconds (tests)

Writes ``curves.json``, ``curves.png`` (one panel per metric, one line per recipe), ``table.md``
(the last point of each recipe) and ``grid_<recipe>.png`` (stage-2 samples ± Cardiomegaly).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gdgan.data.dataset import ImageDataset
from gdgan.data.phantom import PhantomConfig, make_phantom
from gdgan.data.splits import patient_split
from gdgan.labels import FINDINGS
from gdgan.models.gdgan import build_stage1, build_stage2, to_uint8
from gdgan.store.local import LocalStore
from gdgan.training.data import TrainData
from gdgan.training.loop import run_phase
from gdgan.training.phases import ConditionalPhase, Recipe, Stage2Phase
from gdgan.training.presets import TrainConfig, get_config
from recipe_judge import Judge, score_stage1, score_stage2, train_judge

CARDIO = FINDINGS.index("Cardiomegaly")
MODERN = {
    "loss": "hinge",
    "r1_gamma": 1.0,
    "r1_every": 4,
    "diffaug": "color,translation,cutout",
    "n_critic": 1,
    "lr": 5e-4,
    "betas": (0.0, 0.99),
}
# name -> (preset, overrides); the preset's schedule fields (steps) are replaced by --s1/--s2.
RECIPES: dict[str, tuple[str, dict[str, Any]]] = {
    # the paper's game on the previous demo budget's networks (preset demo-paper), at 32 / 64 px
    "paper-32": ("demo-paper", {"size": 32}),
    "paper-64": ("demo-paper", {"size": 64}),
    # the modern game on the same networks: hinge + lazy R1 + DiffAugment, n_critic 1
    "modern-32": ("demo-paper", {"size": 32, **MODERN}),
    "modern-64": ("demo-paper", {"size": 64, **MODERN}),
    # the demo preset itself (modern + conditional norms + class-balanced stage 2, 32 px)
    "demo": ("demo", {}),
    "demo-64": ("demo", {"size": 64}),
    # issue 10, third wave: the previous demo preset (before the critic options) and one change
    # at a time towards the current one (docs/notes/training.md, "Diversity and the finding")
    "demo-v2": ("demo", {"mbstd": 0, "focus_weight": 1.0, "lambda_mse": 1.0}),
    "demo-v2+mbstd": ("demo", {"mbstd": 4, "focus_weight": 1.0, "lambda_mse": 1.0}),
    "demo-v2+weights": ("demo", {"mbstd": 0, "focus_weight": 5.0, "lambda_mse": 0.3}),
    "demo+projection": ("demo", {"projection": True}),
    # gpu_bench.py: the paper's widths and schedule on a GPU, and the modern mode at those widths
    "paper-gpu": ("paper", {"epochs": None}),
    "modern-gpu": ("paper", {"epochs": None, **MODERN, "lr": 2e-4}),
}


def _config(name: str, extra: dict[str, Any]) -> TrainConfig:
    preset, over = RECIPES[name]
    return get_config(preset, {**over, **extra})


def _weights(cfg: TrainConfig, findings: tuple[str, ...] | None = None) -> Any:
    from gdgan.training.api import _weights as w

    return w(cfg, findings)


def _recipe(cfg: TrainConfig) -> Recipe:
    return Recipe(loss=cfg.loss, r1_gamma=cfg.r1_gamma, r1_every=cfg.r1_every, diffaug=cfg.diffaug)


class _Clock:
    """Training seconds minus the time spent scoring: CPU-seconds (``time.process_time``) on a
    CPU, fair under any load; wall seconds after a device sync on a GPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.t0 = self.read()
        self.excluded = 0.0

    def read(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
            return time.perf_counter()
        return time.process_time()

    def now(self) -> float:
        return self.read() - self.t0 - self.excluded


def run_recipe(
    name: str,
    ds: ImageDataset,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    judge: Judge,
    budget1: float,
    budget2: float,
    every_s: float,
    extra: dict[str, Any],
    n_eval: int,
    device: str = "cpu",
    save_dir: Path | None = None,
) -> dict[str, Any]:
    """Train one recipe's two stages for ``budget1`` + ``budget2`` training CPU-seconds (or the
    steps of ``extra``, whichever ends first), scoring every ``every_s`` CPU-seconds."""
    dev = torch.device(device)
    if dev.type == "cpu":
        torch.set_num_threads(1)
    cfg1 = _config(name, {"steps": 100_000, **extra, "checkpoint_every": 10**9})
    cfg2 = _config(name, {"steps": 100_000, **extra, "checkpoint_every": 10**9})
    from gdgan.training.api import _gan

    gan = _gan(cfg1)
    data = TrainData.from_dataset(ds, train_idx, cfg1.size, dev)
    store = LocalStore(Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-recipe-{os.getpid()}-{name}")
    clock = _Clock(dev)
    points: list[dict[str, Any]] = []

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg1.seed)
        G1, D1 = build_stage1(gan)
        torch.manual_seed(cfg1.seed + 1000)
        G2, D2 = build_stage2(gan)
    for m in (G1, D1, G2, D2):
        m.to(dev)

    state = {"next": every_s, "stop": False}

    def hook(stage: int, end_s: float, g1: Any) -> Any:
        def on_step(step: int, ema: torch.nn.Module) -> None:
            now = clock.now()
            state["stop"] = now >= end_s or step >= cfg1.steps
            if now < state["next"] and not state["stop"]:
                return
            state["next"] = now + every_s
            t = clock.read()
            if stage == 1:
                m = score_stage1(judge, ema, gan.nz, n_eval)
            else:
                m = score_stage2(judge, g1, ema, gan.nz, n_eval)
            clock.excluded += clock.read() - t
            points.append({"stage": stage, "step": step, "cpu_s": round(clock.now(), 2), **m})
            print(name, json.dumps(points[-1]), file=sys.stderr, flush=True)

        return on_step

    def stop() -> bool:
        return bool(state["stop"])

    ph1 = ConditionalPhase("stage1", G1, D1, cfg1.nz, _weights(cfg1), False, _recipe(cfg1))
    r1 = run_phase(
        ph1,
        data,
        cfg1,
        total=cfg1.steps,
        store=store,
        run_id="b",
        device=dev,
        on_step=hook(1, budget1, None),
        should_stop=stop,
    )
    cpu_s1 = clock.now()
    state["stop"], state["next"] = False, cpu_s1 + every_s
    g1 = r1.ema
    ph2 = Stage2Phase(G2, D2, g1, r1.D, cfg2.nz, _weights(cfg2, tuple(FINDINGS)), _recipe(cfg2))
    if cfg2.focus_finding:
        data = data.with_focus(FINDINGS.index(cfg2.focus_finding), cfg2.focus_share)
    r2 = run_phase(
        ph2,
        data,
        cfg2,
        total=cfg2.steps,
        store=store,
        run_id="b",
        device=dev,
        seed_offset=1000,
        on_step=hook(2, cpu_s1 + budget2, g1),
        should_stop=stop,
    )
    grid = _grid(g1.cpu(), r2.ema.cpu(), gan.nz)
    if save_dir is not None:  # the EMA generators, to score later with another judge
        from safetensors.torch import save_file

        save_dir.mkdir(parents=True, exist_ok=True)
        tensors = {f"g1.{k}": v.contiguous() for k, v in g1.state_dict().items()}
        tensors |= {f"g2.{k}": v.contiguous() for k, v in r2.ema.state_dict().items()}
        save_file(tensors, str(save_dir / f"model_{name}.safetensors"), {"gan": json.dumps(gan.to_dict())})
    return {
        "name": name,
        "device": dev.type,
        "images_per_s": {"stage1": round(r1.images_per_s, 1), "stage2": round(r2.images_per_s, 1)},
        "config": cfg1.to_dict() | {"steps": [r1.step, r2.step]},
        "cpu_s": {"stage1": round(cpu_s1, 1), "both": round(clock.now(), 1)},
        "points": points,
        "grid": grid.tolist(),
    }


@torch.no_grad()
def _grid(g1: torch.nn.Module, g2: torch.nn.Module, nz: int, k: int = 4) -> np.ndarray:
    """Rows = (gender, view) groups; columns = k seeds, each without then with Cardiomegaly."""
    gen = torch.Generator().manual_seed(123)
    z = torch.rand(16, nz, generator=gen)
    general = torch.tensor([[g, v] for g in (0, 1) for v in (0, 1) for _ in range(k)], dtype=torch.float32)
    x1 = g1(z, general)
    no = torch.zeros(16, len(FINDINGS))
    yes = no.clone()
    yes[:, CARDIO] = 1
    a, b = to_uint8(g2(x1, no))[:, 0], to_uint8(g2(x1, yes))[:, 0]
    return torch.stack([a, b], 1).reshape(32, *a.shape[1:]).numpy()


def _plot(results: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [
        ("acc_gender", "gender acc. (requested)"),
        ("acc_view", "view acc. (requested)"),
        ("rel_fd", "relative FD (↓)"),
        ("recall", "recall"),
        ("auc_cardio", "Cardiomegaly AUC (stage 2)"),
        ("ctr_pos", "share CTR>0.5 | asked + (stage 2)"),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, (key, title) in zip(axes.flat, metrics):
        for r in results:
            pts = [p for p in r["points"] if key in p]
            ax.plot([p["cpu_s"] for p in pts], [p[key] for p in pts], marker=".", label=r["name"])
        ax.set_title(title)
        ax.set_xlabel("training CPU-seconds (1 thread)")
        ax.grid(alpha=0.3)
    axes.flat[0].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=90)


TABLE_KEYS = ("acc_gender", "acc_view", "auc_cardio", "ctr_pos", "ctr_neg", "rel_fd", "precision", "recall")


def _table(results: list[dict[str, Any]], ceiling: dict[str, float]) -> str:
    head = "| recipe | CPU-s (s1 + s2) | " + " | ".join(TABLE_KEYS) + " |"
    lines = [head, "|" + "---|" * (len(TABLE_KEYS) + 2)]
    lines.append("| real test (ceiling) | — | " + " | ".join(_fmt(ceiling.get(k)) for k in TABLE_KEYS) + " |")
    for r in results:
        last = r["points"][-1]
        lines.append(
            f"| {r['name']} | {r['cpu_s']['both']:.0f} | "
            + " | ".join(_fmt(last.get(k)) for k in TABLE_KEYS)
            + " |"
        )
    return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:.3f}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", default="paper-32,paper-64,modern-32,modern-64,demo")
    ap.add_argument("--n", type=int, default=6000, help="phantom images (NIH label mix)")
    ap.add_argument("--s1", type=float, default=150, help="stage-1 training CPU-seconds")
    ap.add_argument("--s2", type=float, default=100, help="stage-2 training CPU-seconds")
    ap.add_argument("--every", type=float, default=15, help="training CPU-seconds between scorings")
    ap.add_argument("--n-eval", type=int, default=256, help="samples per scoring")
    ap.add_argument("--jobs", type=int, default=1, help="recipes trained at once (one core each)")
    ap.add_argument("--set", action="append", default=[], help="override for every recipe, key=value")
    ap.add_argument("--phantom-set", action="append", default=[], help="PhantomConfig field=value (JSON)")
    ap.add_argument("--out", type=Path, default=Path("bench-out/recipe"))
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    args = ap.parse_args(argv)
    from gdgan.training.presets import parse_overrides

    extra: dict[str, Any] = dict(parse_overrides(args.set))
    names = [s.strip() for s in args.recipes.split(",") if s.strip()]
    for nm in names:
        if nm not in RECIPES:
            raise SystemExit(f"--recipes: unknown recipe {nm!r}; known: {', '.join(RECIPES)}")
    if args.smoke:
        args.n, args.s1, args.s2, args.every, args.n_eval = 300, 60, 60, 60, 32
        extra |= {"ngf": 8, "ndf": 8, "batch_size": 8, "steps": 3}
    torch.set_num_threads(1)
    pkw = {k: json.loads(v) for k, v in (p.split("=", 1) for p in args.phantom_set)}
    ds = make_phantom(PhantomConfig(n=args.n, size=64, seed=0, **pkw))
    split = patient_split(ds.labels["patient_id"], 0)
    sizes = sorted({_config(nm, extra).size for nm in names})
    t = time.process_time()
    judges = {s: train_judge(ds, split.train, split.test, s, epochs=2 if args.smoke else 5) for s in sizes}
    judge_cpu = time.process_time() - t
    jobs = [
        (
            nm,
            ds,
            split.train,
            split.test,
            judges[_config(nm, extra).size],
            args.s1,
            args.s2,
            args.every,
            extra,
            args.n_eval,
            "cpu",
            args.out,
        )
        for nm in names
    ]
    if args.jobs > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as ex:
            results = list(ex.map(run_recipe, *zip(*jobs)))
    else:
        results = [run_recipe(*j) for j in jobs]
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    from gdgan.imaging import grid_png_bytes

    for r in results:
        caps = [
            f"{'MF'[g]}/{('PA', 'AP')[v]} {c}"
            for g in (0, 1)
            for v in (0, 1)
            for _ in range(4)
            for c in ("-", "+C")
        ]
        (out / f"grid_{r['name']}.png").write_bytes(
            grid_png_bytes(np.asarray(r.pop("grid"), np.uint8), caps, ncol=8, scale=2)
        )
    ceiling = {f"{k}": v for s in sizes for k, v in judges[s].ceiling.items()}
    summary = {
        "n_images": args.n,
        "n_train": len(split.train),
        "judge_cpu_s": round(judge_cpu, 1),
        "ceiling": {s: judges[s].ceiling for s in sizes},
        "recipes": results,
        "overrides": extra,
    }
    (out / "curves.json").write_text(json.dumps(summary, indent=1, default=str))
    (out / "table.md").write_text(_table(results, ceiling))
    _plot(results, out / "curves.png")
    print((out / "table.md").read_text())
    return summary


if __name__ == "__main__":
    main()
