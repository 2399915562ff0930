"""The binned analyses (error by VoG bin, share by percentile, window comparison) and the t-test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import VoGError
from .common import (
    _as_bool,
    _as_scores,
    _bin_bounds,
    _check_bins,
    _percent_labels,
    _rate,
    _Result,
    _tie_note,
    assign_bins,
)


# -- error by bin (Fig. 4) -------------------------------------------------------
@dataclass
class BinnedError(_Result):
    """Error rate per VoG quantile bin (bin 0 = lowest VoG).

    Attributes:
        bins: number of bins.
        labels: percentile range of each bin, e.g. ``"90–100%"``.
        counts: samples per bin.
        errors: misclassified samples per bin.
        error_rate: ``errors / counts`` per bin (NaN for an empty bin).
        low, high: smallest and largest score in each bin (NaN when empty).
        edges: ``bins + 1`` values: each bin's lowest score, then the overall maximum.
        overall_error: error rate over all samples (the model's error, for comparison).
        n: number of samples.
        note: why some values are undefined or uninformative, else ``""``.
    """

    bins: int
    labels: list[str]
    counts: list[int]
    errors: list[int]
    error_rate: list[float]
    low: list[float]
    high: list[float]
    edges: list[float]
    overall_error: float
    n: int
    note: str = ""


def error_by_bin(scores, correct, bins: int = 10) -> BinnedError:
    """Error rate per VoG quantile bin (paper Fig. 4: test error by VoG decile).

    Args:
        scores: ``(n,)`` VoG scores.
        correct: ``(n,)`` bool, True where the prediction equals the label.
        bins: number of quantile bins (10 = deciles); see :func:`assign_bins` for ties.

    Returns:
        :class:`BinnedError`; ``error_rate[-1]`` is the top decile's error.
    """
    s = _as_scores(scores)
    ok = _as_bool(correct, s.size, "correct")
    bins = _check_bins(bins)
    b = assign_bins(s, bins)
    wrong = ~ok
    counts = np.bincount(b, minlength=bins)
    errors = np.bincount(b, weights=wrong, minlength=bins).astype(np.int64)
    low, high, edges = _bin_bounds(s, b, bins)
    notes = [_tie_note(s)]
    if s.size < bins:
        notes.append(f"only {s.size} samples for {bins} bins: some bins are empty")
    if s.size and not wrong.any():
        notes.append(NO_ERRORS_NOTE)
    return BinnedError(
        bins=bins,
        labels=_percent_labels(bins),
        counts=counts.tolist(),
        errors=errors.tolist(),
        error_rate=[_rate(e, c) for e, c in zip(errors, counts)],
        low=low,
        high=high,
        edges=edges,
        overall_error=_rate(wrong.sum(), s.size),
        n=int(s.size),
        note="; ".join(x for x in notes if x),
    )


#: Why an error-by-decile chart is flat at zero (the panel's chart title and the report's note).
NO_ERRORS_NOTE = (
    "no sample here is misclassified, so every decile's error is 0: on training data the model fit "
    "(or memorized) this is expected; the paper's chart is of held-out data, so open the test split"
)


# -- Welch t-test (Fig. 8) ---------------------------------------------------------
@dataclass
class TTest(_Result):
    """Welch two-sample t-test of VoG, flagged vs other samples.

    Attributes:
        n_flagged, mean_flagged, std_flagged: the flagged group (std with ``ddof=1``).
        n_other, mean_other, std_other: the rest.
        t: Welch's t statistic (positive when flagged samples score higher).
        dof: Welch–Satterthwaite degrees of freedom.
        p_value: p-value for ``alternative``.
        alternative: ``"two-sided"``, ``"greater"`` (flagged higher) or ``"less"``.
        note: why values are NaN, else ``""``.
    """

    n_flagged: int
    mean_flagged: float
    std_flagged: float
    n_other: int
    mean_other: float
    std_other: float
    t: float
    dof: float
    p_value: float
    alternative: str = "two-sided"
    note: str = ""


def welch_ttest(scores, flag, alternative: str = "two-sided") -> TTest:
    """Welch's unequal-variance t-test of ``scores[flag]`` against ``scores[~flag]`` (Fig. 8).

    Uses ``scipy.stats.ttest_ind(equal_var=False)``. Means and stds of an empty group
    are NaN; with fewer than 2 samples in a group, or zero variance in both, ``t``,
    ``dof`` and ``p_value`` are NaN and ``note`` says why.

    Args:
        scores: ``(n,)`` VoG scores.
        flag: ``(n,)`` bool, e.g. the shuffled-label flag.
        alternative: ``"two-sided"`` (paper), ``"greater"`` or ``"less"``.
    """
    from scipy import stats

    s = _as_scores(scores)
    f = _as_bool(flag, s.size, "flag")
    if alternative not in ("two-sided", "greater", "less"):
        raise VoGError(f"alternative={alternative!r}: use 'two-sided', 'greater' or 'less'")
    a, b = s[f], s[~f]

    def _mean(x):
        return float(x.mean()) if x.size else float("nan")

    def _std(x):
        return float(x.std(ddof=1)) if x.size > 1 else float("nan")

    t = dof = p = float("nan")
    note = ""
    if a.size < 2 or b.size < 2:
        note = f"a t-test needs at least 2 samples per group; got {a.size} flagged and {b.size} other"
    elif a.var() == 0 and b.var() == 0:
        note = "both groups have zero variance: the t statistic is undefined"
    else:
        r = stats.ttest_ind(a, b, equal_var=False, alternative=alternative)
        t, p, dof = float(r.statistic), float(r.pvalue), float(r.df)
    return TTest(
        n_flagged=int(a.size),
        mean_flagged=_mean(a),
        std_flagged=_std(a),
        n_other=int(b.size),
        mean_other=_mean(b),
        std_other=_std(b),
        t=t,
        dof=dof,
        p_value=p,
        alternative=alternative,
        note=note,
    )


# -- share of flagged samples per bin (Fig. 6 right) -----------------------------
@dataclass
class BinnedShare(_Result):
    """Share of flagged (e.g. OOD) samples per VoG quantile bin.

    Attributes:
        bins, labels, counts, low, high, edges: as in :class:`BinnedError`.
        flagged: flagged samples per bin.
        share: ``flagged / counts`` per bin.
        over_index: ``share / overall_share`` per bin (1 = as often as overall; NaN when
            nothing is flagged).
        overall_share: flagged fraction over all samples.
        n, n_flagged: totals.
        note: why values are NaN or uninformative, else ``""``.
    """

    bins: int
    labels: list[str]
    counts: list[int]
    flagged: list[int]
    share: list[float]
    over_index: list[float]
    low: list[float]
    high: list[float]
    edges: list[float]
    overall_share: float
    n: int
    n_flagged: int
    note: str = ""


def share_by_percentile(scores, flag, bins: int = 10) -> BinnedShare:
    """Share of flagged samples in each VoG percentile bin and its over-index (Fig. 6 right).

    Args:
        scores: ``(n,)`` VoG scores.
        flag: ``(n,)`` bool, e.g. True for out-of-distribution samples.
        bins: number of quantile bins; see :func:`assign_bins` for ties.
    """
    s = _as_scores(scores)
    f = _as_bool(flag, s.size, "flag")
    bins = _check_bins(bins)
    b = assign_bins(s, bins)
    counts = np.bincount(b, minlength=bins)
    flagged = np.bincount(b, weights=f, minlength=bins).astype(np.int64)
    overall = _rate(f.sum(), s.size)
    share = [_rate(x, c) for x, c in zip(flagged, counts)]
    over = [x / overall if overall > 0 else float("nan") for x in share]
    low, high, edges = _bin_bounds(s, b, bins)
    notes = [_tie_note(s)]
    if not f.any():
        notes.append("no sample is flagged: the over-index is undefined")
    if s.size < bins:
        notes.append(f"only {s.size} samples for {bins} bins: some bins are empty")
    return BinnedShare(
        bins=bins,
        labels=_percent_labels(bins),
        counts=counts.tolist(),
        flagged=flagged.tolist(),
        share=share,
        over_index=over,
        low=low,
        high=high,
        edges=edges,
        overall_share=overall,
        n=int(s.size),
        n_flagged=int(f.sum()),
        note="; ".join(x for x in notes if x),
    )


# -- early vs late window (Fig. 7) --------------------------------------------------
def _trend(res: BinnedError) -> dict:
    """Direction of the error over the bins: slope per bin, Spearman, top − bottom."""
    from scipy import stats

    idx = np.arange(res.bins, dtype=float)
    err = np.array(res.error_rate, dtype=float)
    ok = np.isfinite(err)
    slope = rho = float("nan")
    if ok.sum() >= 2:
        slope = float(np.polyfit(idx[ok], err[ok], 1)[0])
        if not np.all(err[ok] == err[ok][0]):
            rho = float(stats.spearmanr(idx[ok], err[ok]).statistic)
    diff = float(err[ok][-1] - err[ok][0]) if ok.any() else float("nan")
    if not np.isfinite(slope) or slope == 0:
        direction = "flat"
    else:
        direction = "higher VoG, higher error" if slope > 0 else "higher VoG, lower error"
    return {"slope": slope, "spearman": rho, "top_minus_bottom": diff, "direction": direction}


@dataclass
class WindowComparison(_Result):
    """Decile error of an early-window and a late-window VoG over the same samples.

    Attributes:
        early, late: :class:`BinnedError` of each window's scores.
        early_trend, late_trend: ``{"slope", "spearman", "top_minus_bottom", "direction"}``:
            least-squares slope of error rate against bin index (error per bin), Spearman
            correlation of error with bin index, error of the top bin minus the bottom bin,
            and a words summary (``"higher VoG, higher error"`` / ``"higher VoG, lower error"`` / ``"flat"``).
        reversed: True when the two windows rank in opposite directions (paper Fig. 7).
    """

    early: BinnedError
    late: BinnedError
    early_trend: dict
    late_trend: dict
    reversed: bool = False


def window_decile_comparison(early_scores, late_scores, correct, bins: int = 10) -> WindowComparison:
    """Error by VoG bin for an early and a late checkpoint window (paper Fig. 7).

    Args:
        early_scores, late_scores: ``(n,)`` VoG of the same samples from early and late checkpoints.
        correct: ``(n,)`` bool, True where the (final) model is right.
        bins: number of quantile bins.
    """
    ne, nl = np.size(early_scores), np.size(late_scores)
    if ne != nl:
        raise VoGError(f"early and late scores must have the same length; got {ne} and {nl}")
    e = error_by_bin(early_scores, correct, bins)
    l = error_by_bin(late_scores, correct, bins)
    te, tl = _trend(e), _trend(l)
    rev = bool(np.isfinite(te["slope"]) and np.isfinite(tl["slope"]) and te["slope"] * tl["slope"] < 0)
    return WindowComparison(early=e, late=l, early_trend=te, late_trend=tl, reversed=rev)
