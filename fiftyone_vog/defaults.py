"""Defaults chosen by measurement (README "Results", docs/results.md); imports neither torch nor FiftyOne.

The API (:func:`fiftyone_vog.compute_vog`), the CLI (``fiftyone-vog compute``) and the App's
Compute VoG form all read their default from here, so the three never disagree.
"""

#: The class score whose input gradient VoG measures. ``"probability"`` (softmax) flags memorized
#: labels and OOD samples on our data where the paper's main-text ``"logit"`` ranks memorized
#: samples *below* clean ones (docs/results.md); ``"logit"`` stays available, exactly.
TARGET = "probability"
