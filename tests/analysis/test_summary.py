"""The panel draws numbers computed by ``fiftyone_vog.analysis``: it holds no statistics itself."""

import inspect

import numpy as np

from fiftyone_vog.analysis import assign_bins, summary
from fiftyone_vog.app import panel as panels


def test_panel_numbers_are_the_analysis_functions():
    for name in ("finite", "histogram", "decile_of", "decile_table", "class_means", "classification_errors"):
        assert getattr(panels, name) is getattr(summary, name), name
        assert inspect.getmodule(getattr(panels, name)) is summary
    src = inspect.getsource(panels)
    for statistic in ("np.histogram", "np.mean(", ".mean()", "np.median", "argsort", "lexsort"):
        assert statistic not in src, statistic


def test_summary_numbers():
    s = np.array([3.0, 1.0, 2.0, 2.0, 5.0])
    assert summary.describe(s) == {"n": 5, "mean": 2.6, "std": float(s.std()), "min": 1.0, "median": 2.0, "max": 5.0}
    assert summary.describe([])["mean"] is None
    np.testing.assert_array_equal(summary.decile_of(s, 5), assign_bins(s, 5))
    rows = summary.decile_table(s, [True, None, False, False, True], num=5)
    assert [r["error_rate"] for r in rows] == [None, 0.0, 0.0, 1.0, 1.0]
    scores, mask = summary.finite([1.0, None, float("nan"), 2.0])
    assert scores.tolist() == [1.0, 2.0] and mask.tolist() == [True, False, False, True]
