"""Statistics on VoG scores: the paper's analyses as pure numpy/scipy functions.

Every analysis takes plain arrays and returns a small dataclass whose ``to_dict()``
is JSON-serializable (numpy scalars become Python numbers; NaN and ±inf become
``None``). Each has a thin ``*_from_view`` wrapper that reads the arrays from a
FiftyOne dataset or view by field name (:mod:`.from_view`, which takes the view it is
given and never imports FiftyOne itself). :mod:`.binned` holds the binned analyses and
the t-test, :mod:`.detectors` the side-by-side table of VoG and its companions as detectors of
one flag, :mod:`.ranking` the rank-based ones (detection, rank stability, per-class
correlation), :mod:`.summary` the numbers of the App's panel (histogram, deciles, class means),
:mod:`.common` the shared helpers (binning, top-k, JSON).

Conventions shared by all functions:

- ``scores``: ``(n,)`` float-like, finite. Higher = more variable = "harder".
- ``correct`` / ``flag``: ``(n,)`` bool (or 0/1), aligned with ``scores``.
- **Quantile bins** (:func:`assign_bins`): samples are ranked by score, ties broken by
  their position in the input (earlier first), and rank ``r`` (0-based) goes to bin
  ``r * bins // n``. Every bin thus holds ``floor(n/bins)`` or ``ceil(n/bins)``
  samples, bin 0 is the lowest-VoG bin, and the result is deterministic even when
  scores tie or are all equal (then the bins split the samples by input order and
  carry no VoG information; the result's ``note`` says so). With ``n < bins`` some
  bins are empty: their count is 0 and their rates are NaN.
- **Top-k** (:func:`detection_metrics`, :func:`rank_stability`): the k highest
  scores, ties broken by input position (earlier first).
- Undefined statistics (one-class flags, a group with fewer than 2 samples,
  constant input to a correlation) are NaN, with a human-readable ``note``; they
  never raise. Malformed input (wrong shapes, non-finite scores, empty arrays)
  raises :class:`~fiftyone_vog.VoGError`.
"""

from .binned import (
    BinnedError,
    BinnedShare,
    TTest,
    WindowComparison,
    error_by_bin,
    share_by_percentile,
    welch_ttest,
    window_decile_comparison,
)
from .common import assign_bins, to_jsonable
from .detectors import (
    COMPANION_SIGNS,
    VERDICT_QUESTIONS,
    DetectorTable,
    detector_lines,
    detector_table,
    detector_table_from_view,
    score_direction,
    score_verdict,
)
from .from_view import *  # noqa: F403  (the *_from_view wrappers, listed in FROM_VIEW)
from .from_view import FROM_VIEW, read_correct, read_flag
from .ranking import (
    Detection,
    PerClassVoG,
    RankStability,
    detection_metrics,
    per_class_vog_vs_fnr,
    rank_stability,
)

__all__ = [
    "BinnedError",
    "TTest",
    "BinnedShare",
    "Detection",
    "RankStability",
    "PerClassVoG",
    "WindowComparison",
    "assign_bins",
    "to_jsonable",
    "error_by_bin",
    "welch_ttest",
    "share_by_percentile",
    "detection_metrics",
    "rank_stability",
    "per_class_vog_vs_fnr",
    "window_decile_comparison",
    "read_flag",
    "read_correct",
    *FROM_VIEW,
    "DetectorTable",
    "detector_table",
    "detector_table_from_view",
    "COMPANION_SIGNS",
    "score_direction",
    "score_verdict",
    "detector_lines",
    "VERDICT_QUESTIONS",
]
