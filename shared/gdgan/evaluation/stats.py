"""Statistics for the report: mean ± SD, two kinds of CI, paired differences, Welch's t-test.

The report shows two 95 % intervals for each mean AUC and each difference against ``none``,
because they answer different questions:

- **repeat-level t-interval** (:func:`t_interval`, ``paired_difference(...)["t_ci"]``): over the
  repeats (new patient split, newly trained GANs and classifier each time), Student's t with
  n − 1 degrees of freedom. It is the uncertainty of "train again on new data" — the question a
  claim such as "GDGAN images improve the classifier" is about, so verdicts use it. With three
  repeats it is wide (t₀.₉₇₅,₂ = 4.30).
- **test-set bootstrap** (:func:`bootstrap_mean_auc_ci`, ``paired_difference(...)["bootstrap_ci"]``):
  resamples the test images of each repeat, the trained classifiers held fixed. It says how much
  the AUCs of *these* classifiers move with the test sample, nothing about retraining.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

from gdgan.evaluation.auc import roc_auc


@dataclass(frozen=True)
class WelchResult:
    t: float
    df: float
    p: float
    mean_a: float
    mean_b: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> WelchResult:
    """Two-sided Welch's t-test (unequal variances), Welch–Satterthwaite degrees of freedom.

    Written out (rather than only calling SciPy) so the report can show t and df; the tests
    check it equals ``scipy.stats.ttest_ind(a, b, equal_var=False)``.
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.size < 2 or y.size < 2:
        raise ValueError("Welch's t-test needs at least two values per group")
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se2 = va + vb
    if se2 == 0:
        return WelchResult(math.nan, math.nan, math.nan, float(x.mean()), float(y.mean()))
    t = (x.mean() - y.mean()) / math.sqrt(se2)
    df = se2**2 / (va**2 / (x.size - 1) + vb**2 / (y.size - 1))
    p = 2.0 * sps.t.sf(abs(t), df)
    return WelchResult(float(t), float(df), float(p), float(x.mean()), float(y.mean()))


def mean_sd(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample SD (ddof=1, as papers usually report; 0 for a single value)."""
    v = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(v.mean()) if v.size else math.nan,
        "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
        "n": int(v.size),
    }


def t_interval(values: Sequence[float], level: float = 0.95) -> dict[str, object]:
    """Student-t CI of the mean of ``values`` (one per repeat): mean ± t_{1-α/2, n-1}·SD/√n.

    ``lo``/``hi`` are None with fewer than two values (no spread to estimate).
    """
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        raise ValueError("t-interval needs at least one value")
    out: dict[str, object] = {"mean": float(v.mean()), "n": int(v.size), "level": level}
    if v.size < 2:
        return out | {"lo": None, "hi": None, "half_width": None, "df": None}
    half = float(sps.t.ppf(1 - (1 - level) / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return out | {"lo": out["mean"] - half, "hi": out["mean"] + half, "half_width": half, "df": v.size - 1}  # type: ignore[operator]


def verdict(ci: Sequence[float] | None, what: str = "difference") -> str:
    """Plain words for a CI of a difference: only an interval excluding 0 earns a direction."""
    if ci is None:
        return f"no verdict: one repeat gives no repeat-level interval for the {what}"
    lo, hi = ci
    if lo > 0:
        return "higher (repeat-level 95% CI excludes 0)"
    if hi < 0:
        return "lower (repeat-level 95% CI excludes 0)"
    return "no difference shown (repeat-level 95% CI includes 0)"


def _stratified_resample(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap indices that keep the positive/negative counts (so every replicate has an AUC)."""
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    return np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])


def bootstrap_auc_ci(
    y_true: np.ndarray, scores: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Percentile CI of the AUC, resampling test images (stratified by class)."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    for i in range(n_boot):
        idx = _stratified_resample(y, rng)
        reps[i] = roc_auc(y[idx], s[idx])
    lo, hi = np.quantile(reps, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"auc": roc_auc(y, s), "lo": float(lo), "hi": float(hi), "n_boot": n_boot, "level": level}


def bootstrap_mean_auc_ci(
    runs: Sequence[tuple[np.ndarray, np.ndarray]], n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """CI of the mean AUC over repeats, resampling the pooled test predictions within each repeat.

    Each repeat's classifier has its own score scale, so concatenating logits across repeats and
    computing one AUC mixes scales (and lands below every per-repeat AUC). Instead every bootstrap
    replicate resamples each repeat's test images (stratified) and averages the per-repeat AUCs.
    """
    ys = [np.asarray(y).astype(bool) for y, _ in runs]
    ss = [np.asarray(s, dtype=np.float64) for _, s in runs]
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    for i in range(n_boot):
        acc = 0.0
        for y, s in zip(ys, ss):
            idx = _stratified_resample(y, rng)
            acc += roc_auc(y[idx], s[idx])
        reps[i] = acc / len(runs)
    lo, hi = np.quantile(reps, [(1 - level) / 2, 1 - (1 - level) / 2])
    mean = float(np.mean([roc_auc(y, s) for y, s in zip(ys, ss)]))
    return {"auc": mean, "lo": float(lo), "hi": float(hi), "n_boot": n_boot, "level": level}


def paired_difference(
    runs_a: Sequence[tuple[np.ndarray, np.ndarray]],
    runs_b: Sequence[tuple[np.ndarray, np.ndarray]],
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, object]:
    """AUC(a) − AUC(b) per repeat; their mean with the repeat-level t-interval (``t_ci``, the
    basis of ``verdict``) and the test-set paired bootstrap CI (``bootstrap_ci``: the test images
    of every repeat resampled jointly, classifiers fixed). See the module docstring.

    ``runs_a[r]`` and ``runs_b[r]`` are (y_true, scores) on the same test images of repeat r.
    """
    if len(runs_a) != len(runs_b) or not runs_a:
        raise ValueError("paired comparison needs the same, non-zero number of repeats")
    diffs = []
    for (ya, sa), (yb, sb) in zip(runs_a, runs_b):
        if not np.array_equal(np.asarray(ya).astype(bool), np.asarray(yb).astype(bool)):
            raise ValueError("paired comparison needs the same test labels in both runs")
        diffs.append(roc_auc(ya, sa) - roc_auc(yb, sb))
    d = np.asarray(diffs)
    out: dict[str, object] = {"per_repeat": [float(x) for x in d], "mean": float(d.mean())}
    ti = t_interval(d, level)
    out["t_ci"] = [ti["lo"], ti["hi"]] if ti["lo"] is not None else None
    out["verdict"] = verdict(out["t_ci"])  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    for i in range(n_boot):
        acc = 0.0
        for (ya, sa), (_, sb) in zip(runs_a, runs_b):
            y = np.asarray(ya).astype(bool)
            idx = _stratified_resample(y, rng)
            acc += roc_auc(y[idx], np.asarray(sa)[idx]) - roc_auc(y[idx], np.asarray(sb)[idx])
        reps[i] = acc / len(runs_a)
    lo, hi = np.quantile(reps, [(1 - level) / 2, 1 - (1 - level) / 2])
    out["bootstrap_ci"] = [float(lo), float(hi)]
    out["n_boot"] = n_boot
    out["level"] = level
    return out
