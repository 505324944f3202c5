"""Calibration of the phantom's difficulty against real radiographs (issue 11's table, regenerated).

Rows, each with the `demo` evaluation classifier, strategies ``none`` and ``oversample``, and
patient-wise splits exactly as ``gdgan evaluate`` makes them (same seeds, same training-set
plans, same classifier config):

* ``real``       — the shared 970-image NIH sample (``NIH_SAMPLE_DIR``, default
  ``../shared/data/nih_sample64``), skipped cleanly when it is absent;
* ``phantom-970``— a phantom of the same size, Cardiomegaly rate and AP share;
* ``phantom-ref``— a phantom with the counts of the outside real reference (2,896 images,
  4.1 % Cardiomegaly; real NIH gave ``none`` 0.639, ``oversample`` 0.669);
* ``phantom-demo``— the phantom at ``make demo`` size (6,000 images, NIH's label mix).

Plus the *domain-feature distance* between phantom and real-sample images: ``--domain-nets``
domain networks (the `demo` preset's, the evaluation's own feature extractor when no ImageNet
weights are used), each trained on its own half of the real sample's patients; the Fréchet
distance of their features between the other half and each phantom — this one (the frozen
defaults, ``look="film"`` since the fifth wave), the other looks (``nih_matched``,
opt-in; ``radiograph``, the fourth wave's defaults), the original phantom (``--baseline-ref``,
one file loaded from git) and the previous defaults (``--previous-ref``, the ``calibrated`` look,
that commit's package run in a subprocess) — is reported side by side, with the real-vs-real
distance as the floor and the ratios to the original and previous phantoms and to this one.

Run: ``python benchmarks/bench_calibration.py [--repeats 3] [--rows real,ref,demo,970]
[--draws 3] [--markdown] [--log FILE]``. ``--draws N`` repeats the ref and demo rows on N phantom
seeds: one draw's 3-split mean moves by about ±0.1 between seeds, so the calibration criterion is
the mean over 3 draws (docs/notes/phantom.md). Torch and BLAS are pinned to ``--threads`` (default 1): the
figures are CPU-bound, not timing-sensitive.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_NIH = ROOT.parent / "shared" / "data" / "nih_sample64"
REFERENCE = {"n": 2896, "cardiomegaly": 0.041, "none": 0.639, "oversample": 0.669}
PAPER = {"none": 0.807, "oversample": 0.808}
DEMO_N = 6000
REF_CFG: dict[str, object] = {"n": REFERENCE["n"], "prevalence": {"Cardiomegaly": REFERENCE["cardiomegaly"]}}
DEMO_CFG: dict[str, object] = {"n": DEMO_N}
THIS = "phantom (this, frozen defaults)"
# Looks shown beside the defaults (a look that is the default is shown once, as THIS).
MATCHED = "phantom, look='nih_matched' (opt-in, not calibrated)"
RADIOGRAPH = "phantom, look='radiograph' (fourth wave's default, frozen 2026-12-02 02:58 UTC)"
ORIGINAL = "original phantom (8c829cd)"
PREVIOUS = "previous defaults, look='calibrated' (5ca1b2e, frozen 2026-12-01 19:58 UTC)"
# The table, measured on main before this phantom (the first phantom).
BEFORE = {"real": (0.53, 0.49), "phantom-970": (0.82, 0.93), "phantom-demo": (0.927, 0.966)}


@dataclass
class Data:
    """What the evaluation needs of a dataset."""

    name: str
    images: np.ndarray
    target: np.ndarray
    gender: np.ndarray
    view: np.ndarray
    patient_id: np.ndarray


def load_nih_sample(folder: Path) -> Data | None:
    """The real sample as arrays (64-px PNGs + NIH CSV), or None when it is not on this machine."""
    from gdgan.imaging import read_png

    csvs = sorted(folder.glob("Data_Entry_2017*.csv")) if folder.is_dir() else []
    if not csvs:
        return None
    imgs, tgt, gen, view, pid = [], [], [], [], []
    with csvs[0].open(newline="") as fh:
        for r in csv.DictReader(fh):
            path = folder / "images" / r["Image Index"]
            if not path.exists():
                continue
            img = read_png(path)
            if img.ndim == 3:
                img = img[..., 0]
            imgs.append(img)
            tgt.append("Cardiomegaly" in r["Finding Labels"])
            gen.append(r["Patient Gender"] == "F")
            view.append(r["View Position"] == "AP")
            pid.append(int(r["Patient ID"]))
    if not imgs:
        return None
    return Data(
        "real NIH sample",
        np.stack(imgs).astype(np.uint8),
        np.array(tgt, np.uint8),
        np.array(gen, np.uint8),
        np.array(view, np.uint8),
        np.array(pid, np.int64),
    )


def phantom_data(name: str, module: ModuleType, **cfg: object) -> Data:
    ds = module.make_phantom(module.PhantomConfig(**cfg))
    lab = ds.labels
    return Data(
        name,
        np.asarray(ds.images),
        lab["findings"][:, 1].astype(np.uint8),  # Cardiomegaly is column 1 of FINDINGS
        lab["gender"].astype(np.uint8),
        lab["view"].astype(np.uint8),
        lab["patient_id"].astype(np.int64),
    )


def evaluate(
    data: Data, repeats: int, strategies: tuple[str, ...], log, only: set[int] | None = None
) -> dict[str, list[float]]:
    """AUC per split and strategy, as ``run_classifier`` computes it (same seeds and plans);
    ``only`` evaluates a subset of the splits (exploring: each split is the same as in a full run)."""
    from gdgan.data.splits import repeat_splits
    from gdgan.evaluation.auc import roc_auc
    from gdgan.evaluation.augment import plan_training_set
    from gdgan.evaluation.classifier import predict_logits, train_classifier
    from gdgan.evaluation.plan import EvaluationPlan

    plan = EvaluationPlan(dataset_id="calibration", repeats=repeats, strategies=list(strategies))
    preset = plan.eval_preset()
    splits = repeat_splits(data.patient_id, repeats, base_seed=plan.split_base_seed)
    t = data.target
    out: dict[str, list[float]] = {s: [] for s in strategies}
    for r, split in enumerate(splits):
        if only is not None and r not in only:
            continue
        for s in strategies:
            t0 = time.process_time()
            ts = plan_training_set(
                s, split.train, t, data.gender, data.view, plan.share, seed=plan.seed_for("set", s, r)
            )
            tc = train_classifier(
                data.images[ts.real_indices],
                t[ts.real_indices],
                data.images[split.val],
                t[split.val],
                preset.classifier,
                seed=plan.seed_for("classifier", r),
            )
            scores = predict_logits(tc.model, data.images[split.test])
            auc = roc_auc(t[split.test], scores)
            out[s].append(auc)
            log(
                f"  {data.name} split {r} {s}: AUC {auc:.3f} (test positives {int(t[split.test].sum())}, "
                f"train positives {int(t[split.train].sum())}, {time.process_time() - t0:.0f} CPU-s)"
            )
    return out


def load_baseline(ref: str) -> ModuleType | None:
    """The phantom module as it was at git ``ref`` (a single file then), or None if unavailable."""
    try:
        src = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{ref}:shared/gdgan/data/phantom.py"],
            capture_output=True,
            check=True,
            text=True,
        ).stdout
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None
    path = Path(tempfile.mkdtemp(prefix="phantom-baseline-")) / "phantom_baseline.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("phantom_baseline", path)
    if spec is None or spec.loader is None:
        return None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["phantom_baseline"] = mod
    spec.loader.exec_module(mod)
    return mod


def phantom_images_at(ref: str, **cfg: object) -> np.ndarray | None:
    """Phantom images drawn by the phantom package as it was at git ``ref`` (the whole
    ``shared/`` tree of that commit, in a subprocess so it cannot mix with this one), or None."""
    tmp = Path(tempfile.mkdtemp(prefix="phantom-at-"))
    try:
        tar = subprocess.run(
            ["git", "-C", str(ROOT), "archive", ref, "shared"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=tar, check=True)
        out = tmp / "images.npy"
        code = (
            "import json, sys, numpy as np\n"
            "from gdgan.data.phantom import PhantomConfig, make_phantom\n"
            "ds = make_phantom(PhantomConfig(**json.loads(sys.argv[1])))\n"
            "np.save(sys.argv[2], np.asarray(ds.images))\n"
        )
        env = {**os.environ, "PYTHONPATH": str(tmp / "shared")}
        subprocess.run([sys.executable, "-c", code, json.dumps(cfg), str(out)], check=True, env=env)
        return np.load(out)
    except (subprocess.CalledProcessError, FileNotFoundError, OSError):
        return None


def domain_distance(
    real: Data, phantoms: dict[str, np.ndarray], fid_images: int, nets: int, log
) -> dict[str, dict[str, float]]:
    """Fréchet distances between held-out real images and each image set, in two feature spaces:

    * the *domain network* (the evaluation's own CXR feature extractor: the `demo` preset's
      classifier over joint (gender, view, Cardiomegaly) classes), trained here on the real
      sample's other patients for 20 full epochs, since the preset's step cap leaves a
      ~400-image training set nearly untrained. One network is fragile (it is trained on ~390
      images), so ``nets`` networks are trained, each on its own patient half and seed (net 0 is
      the original single one); distances are reported per network;
    * ImageNet Inception (the evaluation's FID network), on ``fid_images`` images per set.
    The real-vs-real distance (two disjoint patient halves) is the floor of each.
    """
    from gdgan.evaluation.domain import train_domain_network
    from gdgan.evaluation.fid import fid_from_features, fid_network_status, inception_features
    from gdgan.evaluation.presets import get_eval_preset

    cfg = get_eval_preset("demo").domain_classifier.model_copy(
        update={"epochs": 20, "max_steps_per_epoch": 0}
    )
    pats = np.unique(real.patient_id)
    out: dict[str, dict[str, float]] = {}
    te0: np.ndarray | None = None
    for k in range(nets):
        rng = np.random.default_rng(k)
        train_p = set(rng.permutation(pats)[: len(pats) // 2].tolist())
        tr = np.array([p in train_p for p in real.patient_id])
        te = np.flatnonzero(~tr)
        te0 = te if te0 is None else te0
        val = np.flatnonzero(tr)[::5]
        fit = np.setdiff1d(np.flatnonzero(tr), val)
        net = train_domain_network(
            real.images[fit],
            real.gender[fit],
            real.view[fit],
            real.target[fit],
            real.images[val],
            real.gender[val],
            real.view[val],
            real.target[val],
            "Cardiomegaly",
            cfg,
            seed=k,
        )
        sets = {"real, other patients (floor)": real.images[np.flatnonzero(tr)]}
        for name, imgs in phantoms.items():
            idx = np.random.default_rng(1).choice(len(imgs), size=min(len(imgs), len(te)), replace=False)
            sets[name] = imgs[idx]
        space = f"domain network {k}"
        out[space] = {}
        f_real = net.features(real.images[te])
        for name, imgs in sets.items():
            out[space][name] = fid_from_features(net.features(imgs), f_real)
            log(f"  {space} distance {name}: {out[space][name]:.4g}")
    if fid_images > 1 and te0 is not None and fid_network_status()["available"]:
        out["Inception (FID)"] = {}
        pats0 = set(real.patient_id[te0].tolist())
        other = np.flatnonzero([p not in pats0 for p in real.patient_id])
        sub = np.random.default_rng(2).choice(te0, size=min(fid_images, len(te0)), replace=False)
        f_ref = inception_features(real.images[sub])
        sets = {"real, other patients (floor)": real.images[other], **phantoms}
        for name, imgs in sets.items():
            f = inception_features(imgs[:fid_images])
            out["Inception (FID)"][name] = fid_from_features(f, f_ref)
            log(f"  Inception FID {name}: {out['Inception (FID)'][name]:.2f}")
    return out


def _fmt(aucs: list[float]) -> str:
    return f"{np.mean(aucs):.3f} ({' / '.join(f'{a:.3f}' for a in aucs)})"


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rows", default="real,970,ref,demo,domain")
    ap.add_argument("--strategies", default="none,oversample")
    ap.add_argument("--nih", type=Path, default=Path(os.environ.get("NIH_SAMPLE_DIR") or DEFAULT_NIH))
    ap.add_argument("--baseline-ref", default="8c829cd", help="git ref of the original phantom (one file)")
    ap.add_argument(
        "--previous-ref", default="5ca1b2e", help="git ref of the previous frozen phantom (a package)"
    )
    ap.add_argument("--domain-nets", type=int, default=3, help="domain networks, each on its own real half")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--draws",
        type=int,
        default=1,
        help="phantom draws (seeds seed, seed+1, ...) of the ref and demo rows",
    )
    ap.add_argument("--splits", default="", help="evaluate only these splits, e.g. 0,2 (exploring)")
    ap.add_argument(
        "--fid-images", type=int, default=120, help="images per set for the Inception FID (0: skip)"
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], help="PhantomConfig override key=value (exploring)")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--log", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from gdgan.data import phantom

    logf = args.log.open("a") if args.log else None

    def log(msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, file=sys.stderr, flush=True)
        if logf:
            logf.write(line + "\n")
            logf.flush()

    over: dict[str, object] = {}
    for kv in args.set:
        k, v = kv.split("=", 1)
        over[k] = json.loads(v)
    rows = set(args.rows.split(","))
    only = {int(k) for k in args.splits.split(",")} if args.splits else None
    strategies = tuple(args.strategies.split(","))
    real = load_nih_sample(args.nih)
    if real is None:
        log(f"real NIH sample not found at {args.nih}: real rows and the domain distance are skipped")
    results: dict[str, dict[str, list[float]]] = {}
    sets: dict[str, Data] = {}
    if "real" in rows and real is not None:
        results["real NIH sample (970)"] = evaluate(real, args.repeats, strategies, log, only)
    if "970" in rows:
        n = len(real.images) if real is not None else 970
        rate = float(real.target.mean()) if real is not None else 0.068
        ap_share = float(real.view.mean()) if real is not None else None
        d = phantom_data(
            "phantom-970",
            phantom,
            n=n,
            size=64,
            seed=args.seed,
            prevalence={"Cardiomegaly": rate},
            ap_fraction=ap_share,
            **over,
        )
        sets["phantom-970"] = d
        results[f"phantom, sample's size and mix ({n}, {100 * rate:.1f} %)"] = evaluate(
            d, args.repeats, strategies, log, only
        )
    draws = range(args.seed, args.seed + args.draws)
    for row, name, cfg in (
        ("ref", "phantom, reference counts (2,896, 4.1 %)", REF_CFG),
        ("demo", "phantom, make demo (6,000)", DEMO_CFG),
    ):
        if row not in rows:
            continue
        per_draw = []
        for seed in draws:
            d = phantom_data(f"phantom-{row}", phantom, size=64, seed=seed, **cfg, **over)
            label = name if seed == args.seed else f"{name}, phantom seed {seed}"
            results[label] = evaluate(d, args.repeats, strategies, log, only)
            per_draw.append(results[label])
        if len(per_draw) > 1:
            # One draw's 3-split mean moves by about ±0.1 between phantom seeds (the classifier
            # either picks up the heart in its first epochs or stops at epoch 1), so the mean over
            # draws is the steadier calibration figure; the first draw is the table's protocol.
            results[f"{name}, mean over phantom seeds {draws.start}-{draws.stop - 1}"] = {
                s: [float(np.mean(r[s])) for r in per_draw] for s in per_draw[0]
            }

    distances: dict[str, dict[str, float]] = {}
    if "domain" in rows and real is not None:
        mix = {
            "prevalence": {"Cardiomegaly": float(real.target.mean())},
            "ap_fraction": float(real.view.mean()),
        }
        cmp: dict[str, np.ndarray] = {
            THIS: sets["phantom-970"].images
            if "phantom-970" in sets
            else phantom_data("p", phantom, n=970, size=64, **mix, **over).images
        }
        base = load_baseline(args.baseline_ref)
        if base is not None:
            cmp[ORIGINAL] = phantom_data("b", base, n=970, size=64, **mix).images
        default_look = over.get("look", phantom.PhantomConfig().look)
        for name, look in ((MATCHED, "nih_matched"), (RADIOGRAPH, "radiograph")):
            if look != default_look:
                cmp[name] = phantom_data(
                    name, phantom, n=970, size=64, **mix, **{**over, "look": look}
                ).images
        prev = phantom_images_at(args.previous_ref, n=970, size=64, **mix)
        if prev is not None:
            cmp[PREVIOUS] = prev
        distances = domain_distance(real, cmp, args.fid_images, args.domain_nets, log)

    lines = ["| data | none AUC (per split) | oversample AUC (per split) |", "|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {_fmt(r.get('none', [np.nan]))} | {_fmt(r.get('oversample', [np.nan]))} |")
    lines.append(
        f"| paper: real NIH, VGG-19, ~78k training images | {PAPER['none']} | {PAPER['oversample']} |"
    )
    lines.append(
        f"| real NIH at the reference counts (outside the team's data) | {REFERENCE['none']} | "
        f"{REFERENCE['oversample']} |"
    )
    if distances:
        spaces = [k for k, v in distances.items() if v]
        lines += ["", "| Fréchet distance to held-out real sample | " + " | ".join(spaces) + " |"]
        lines.append("|---|" + "---:|" * len(spaces))
        for name in distances[spaces[0]]:
            vals = []
            for sp in spaces:
                v = distances[sp].get(name)
                vals.append("" if v is None else f"{v:.4g}")
            lines.append(f"| {name} | " + " | ".join(vals) + " |")
        lines.append("")
        for this in (THIS, MATCHED, RADIOGRAPH):
            if this not in distances[spaces[0]]:
                continue
            for ref_name in (ORIGINAL, PREVIOUS, THIS):
                if this == ref_name:
                    continue
                ratios = {
                    sp: d[this] / d[ref_name] for sp, d in distances.items() if this in d and ref_name in d
                }
                if not ratios:
                    continue
                parts = [f"{sp} {r:.2f}" for sp, r in ratios.items()]
                nets = [r for sp, r in ratios.items() if sp.startswith("domain network")]
                if nets:
                    gm = float(np.exp(np.mean(np.log(nets))))
                    parts.append(f"geometric mean over the domain networks {gm:.2f}")
                lines.append(f"- {this} / {ref_name}: " + "; ".join(parts))
    text = "\n".join(lines)
    print(text if args.markdown else text.replace("|", " "))
    out = {"auc": results, "domain_distance": distances, "repeats": args.repeats, "overrides": over}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
