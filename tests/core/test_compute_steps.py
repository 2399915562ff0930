"""compute_vog's steps (validate → load → score → normalize → write), each run on its own."""

import dataclasses
import inspect
import os

import fiftyone as fo
import numpy as np
import pytest
import torch

import fiftyone_vog as fov
from fiftyone_vog.core import compute
from fiftyone_vog.core.compute import Args, _load, _normalize, _score, _validate, _write
from fiftyone_vog.engine import COMPANIONS, RawVoG

from conftest import CLASSES, small_model
from naive import naive_vog


def _no_checkpoint_loads(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a checkpoint was loaded")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(torch.jit, "load", refuse)


def _error(fn, *a, **k):
    with pytest.raises(fov.VoGError) as e:
        fn(*a, **k)
    return str(e.value)


def test_args_are_compute_vogs_parameters_with_its_defaults(dataset, checkpoint_dir):
    params = inspect.signature(fov.compute_vog).parameters
    assert [f.name for f in dataclasses.fields(Args)] == list(params)
    args = Args.of(dataset, checkpoint_dir, batch_size=3)
    assert args.batch_size == 3 and args.samples is dataset and args.checkpoints == checkpoint_dir
    for name, p in params.items():
        if name not in ("samples", "checkpoints", "batch_size"):
            assert getattr(args, name) == p.default, name


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"normalization": "rank", "vog_field": "bad name"}, "normalization"),  # the first check wins
        ({"batch_size": 0}, "batch_size must be ≥ 1"),
        ({"num_threads": 0}, "num_threads must be ≥ 1"),
        ({"windows": {"early": "a"}}, "window 'early'"),
        ({"label_field": "nope"}, "nope"),
    ],
)
def test_validate_refuses_a_bad_argument_before_any_checkpoint_loads(dataset, checkpoint_dir, monkeypatch, kw, message):
    api = _error(fov.compute_vog, dataset, checkpoint_dir, model=small_model, progress=False, **kw)
    _no_checkpoint_loads(monkeypatch)
    msg = _error(_validate, Args.of(dataset, checkpoint_dir, model=small_model, progress=False, **kw))
    assert msg == api and message in msg


def test_validate_plans_the_run_without_loading_or_writing(dataset, checkpoint_dir, monkeypatch):
    schema = sorted(dataset.get_field_schema())
    _no_checkpoint_loads(monkeypatch)
    plan = _validate(Args.of(dataset, checkpoint_dir, model=small_model, windows={"late": "-2:"}, device="cpu"))
    assert len(plan.paths) == 5 and plan.windows == {"late": [3, 4]}
    assert plan.fields == {"all": ("vog", "vog_raw"), "late": ("vog_late", "vog_late_raw")}
    assert plan.companion_fields["late"]["loss"] == "vog_late_loss"
    assert len(plan.data.ids) == len(dataset) and plan.data.classes == CLASSES
    assert plan.ctx is None and plan.is_main and plan.num_workers == 0 and str(plan.device) == "cpu"
    assert sorted(dataset.get_field_schema()) == schema and dataset.list_runs() == []
    dataset.add_sample_field("vog_late_raw", fo.FloatField)  # a field the run would write, no run's
    assert "vog_late_raw" in _error(
        _validate, Args.of(dataset, checkpoint_dir, model=small_model, windows={"late": "-2:"})
    )


def test_score_of_a_loaded_plan_equals_the_naive_reference(dataset, checkpoint_dir):
    view = dataset.limit(6)
    plan = _validate(
        Args.of(view, checkpoint_dir, model=small_model, windows={"late": "-2:"}, device="cpu", progress=False)
    )
    loaded = _load(plan)
    assert len(loaded.models) == 5 and len(loaded.dataset) == 6
    scored = _score(plan, loaded)
    assert scored.raw.ids == plan.data.ids
    x = torch.stack([loaded.dataset[i][0] for i in range(6)])
    y = torch.as_tensor(plan.data.labels)
    for window, idx in {"all": range(5), "late": [3, 4]}.items():
        ref = naive_vog(loaded.models, x, y, plan.options, idx)
        assert ref.min() > 0  # vacuous on all-zero scores
        assert np.abs(scored.raw.raw[window] - ref).max() / np.abs(ref).max() < 1e-5, window
    assert "vog_raw" not in dataset.get_field_schema()  # scoring writes no field


def _raw_plan(dataset, checkpoint_dir, **kw):
    plan = _validate(Args.of(dataset, checkpoint_dir, model=small_model, **kw))
    n = len(plan.data.ids)
    rng = np.random.default_rng(0)
    used = np.arange(n) % len(CLASSES)
    raw = {"all": rng.gamma(2.0, size=n)}
    raw.update({f"all:{c}": rng.normal(size=n) for c in COMPANIONS})
    return plan, RawVoG(ids=plan.data.ids, raw=raw, used_labels=used, predicted=None), used


def test_normalize_alone_is_the_zscore_within_each_class(dataset, checkpoint_dir):
    plan, raw, used = _raw_plan(dataset, checkpoint_dir)
    scores = _normalize(plan, raw)
    v = raw.raw["all"]
    want = np.empty_like(v)
    for c in range(len(CLASSES)):
        m = used == c
        want[m] = (v[m] - v[m].mean()) / v[m].std()
    assert scores.values["vog"] == pytest.approx(want, rel=1e-12)
    assert scores.values["vog_raw"] is v and scores.raw == {"vog_raw": v}
    for c in COMPANIONS:  # never class-normalized
        assert scores.values[f"vog_{c}"] is raw.raw[f"all:{c}"]
    assert sorted(scores.class_stats["all"]) == sorted(CLASSES)
    abs_plan = dataclasses.replace(plan, args=dataclasses.replace(plan.args, normalization="abs"))
    assert _normalize(abs_plan, raw).values["vog"] == pytest.approx(np.abs(want), rel=1e-12)


def test_the_steps_in_sequence_write_what_compute_vog_writes(dataset, checkpoint_dir):
    view = dataset.limit(6)
    kw = dict(model=small_model, device="cpu", progress=False)
    plan = _validate(Args.of(view, checkpoint_dir, vog_field="steps", **kw))
    loaded = _load(plan)
    scored = _score(plan, loaded)
    results = _write(plan, loaded, scored, _normalize(plan, scored.raw))
    api = fov.compute_vog(view, checkpoint_dir, vog_field="api", **kw)
    assert results.config["fields"] == [f.replace("api", "steps", 1) for f in api.config["fields"]]
    for f in api.config["fields"]:
        assert view.values(f.replace("api", "steps", 1)) == pytest.approx(view.values(f), rel=1e-12), f
    assert fov.get_vog_run(dataset, "steps").config.num_samples == 6
    assert set(results.timings) == {"load", "score", "data_wait", "compute", "write", "total"}
    assert os.path.abspath(plan.paths[0]) in results.config["checkpoints"]
    assert compute.companion_fields("steps", {})["all"]["loss"] in dataset.get_field_schema()
