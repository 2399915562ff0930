"""The saved view vog-likely-ood: every scored sample, most likely out-of-distribution first, by
the run's best OOD score (energy, else max-softmax, else raw VoG) — no OOD tag needed."""

import numpy as np

import fiftyone_vog as fov
from fiftyone_vog.options import QUESTION_SCORES

from conftest import small_model


def _ranked(ids, values, descending=True):
    pairs = [(v, i) for i, v in zip(ids, values) if v is not None]
    pairs.sort(reverse=descending)
    return [i for _, i in pairs]


def test_the_measured_order_is_energy_maxprob_raw():
    assert QUESTION_SCORES["ood"][:3] == ("energy", "maxprob", "raw")


def test_likely_ood_after_compute_is_by_energy_without_any_tag(dataset, checkpoint_dir):
    fov.compute_vog(dataset, checkpoint_dir, model=small_model)
    assert not dataset.count_sample_tags()  # no OOD marking at all
    views = fov.save_vog_views(dataset)
    assert "vog-ood" in views.skipped and "vog-likely-ood" in views
    ids, energy = dataset.values(["id", "vog_energy"])
    view = dataset.load_saved_view("vog-likely-ood")
    assert view.values("id") == _ranked(ids, energy) and len(view) == len(dataset)
    assert views.sorted_by["vog-likely-ood"] == "vog_energy"
    assert {r["view"]: r["sorted_by"] for r in views.table()}["vog-likely-ood"] == "vog_energy"
    description = dataset.get_saved_view_info("vog-likely-ood")["description"]
    assert "likely out-of-distribution" in description and "vog_energy, highest first" in description
    # an expression: a sample scored later (or whose energy rises) moves to the top
    dataset.set_values("vog_energy", {ids[5]: 1e9}, key_field="id")
    assert dataset.load_saved_view("vog-likely-ood").first().id == ids[5]


def test_without_companions_by_raw_vog_and_maxprob_ascending(dataset, checkpoint_dir):
    fov.compute_vog(dataset, checkpoint_dir, model=small_model, companions=False)
    views = fov.save_vog_views(dataset)
    ids, raw = dataset.values(["id", "vog_raw"])
    assert views.sorted_by["vog-likely-ood"] == "vog_raw"
    assert dataset.load_saved_view("vog-likely-ood").values("id") == _ranked(ids, raw)
    # fields of no recorded run follow the naming rule: max-softmax, where a LOW value flags
    rng = np.random.default_rng(0)
    dataset.set_values("score", rng.normal(size=len(dataset)).tolist())
    maxprob = [None if i % 7 == 0 else float(p) for i, p in enumerate(rng.uniform(size=len(dataset)))]
    dataset.set_values("score_maxprob", maxprob)
    views = fov.save_vog_views(dataset, vog_field="score", name_prefix="score")
    view = dataset.load_saved_view("score-likely-ood")
    assert views.sorted_by["score-likely-ood"] == "score_maxprob"
    assert view.values("id") == _ranked(ids, maxprob, descending=False)  # unscored samples left out
    assert "score_maxprob, lowest first" in dataset.get_saved_view_info("score-likely-ood")["description"]


def test_likely_ood_of_a_view_holds_only_its_samples(dataset, checkpoint_dir):
    fov.compute_vog(dataset, checkpoint_dir, model=small_model)
    ids = dataset.values("id")
    part = dataset.select(ids[:15])
    fov.save_vog_views(part, names={"likely-ood": "mine"})
    got = dataset.load_saved_view("mine").values("id")
    assert sorted(got) == sorted(ids[:15])
    assert got == _ranked(*part.values(["id", "vog_energy"]))
