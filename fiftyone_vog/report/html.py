"""``vog_report``: one self-contained HTML page (plotly, inlined) plus PNGs of every VoG analysis.

Charts are drawn twice: interactively with plotly for ``report.html`` (plotly.js is
inlined, so the page opens offline) and as static PNGs with matplotlib (plotly's PNG
export needs kaleido and a Chrome binary, which a plain install does not have). Image
grids are composed with PIL and embedded in the page as data URIs.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import functools
import html
import inspect
import os
import re
from collections.abc import Callable

import numpy as np

from .. import analysis as A
from ..analysis.common import _check_bins
from ..analysis.summary import describe
from ..core.naming import ScoreFields, score_fields, window_field_name
from ..errors import VoGError

PNG_NAMES = {
    "distribution": "vog_histogram.png",
    "error": "error_by_decile.png",
    "windows": "window_deciles.png",
    "memorization": "shuffled_ttest.png",
    "ood": "ood_share.png",
    "per_class": "per_class_vog_vs_fnr.png",
}
MAX_CLASS_GRIDS = 50  # per-class grids beyond this many classes would bury the page
CELL = 96  # grid thumbnail size in pixels


# -- inputs -------------------------------------------------------------------------
def _exists(schema, name):
    return name is not None and name.split(".")[0] in schema


def _require(schema, name, what):
    if name is not None and not _exists(schema, name):
        raise VoGError(f"{what}={name!r} is not a field of this dataset; fields: {', '.join(sorted(schema))}")


def _check_score_fields(schema, **fields):
    """Window score fields hold numbers: a string field such as ``filepath`` is refused up front."""
    import fiftyone as fo

    for what, name in fields.items():
        if name is None:
            continue
        field = schema.get(name.split(".")[0])
        if not isinstance(field, (fo.FloatField, fo.IntField)):
            kind = type(field).__name__
            raise VoGError(
                f"{what}={name!r} holds {kind} values, not VoG scores; pass a score field written by "
                "compute_vog with windows, e.g. vog_early"
            )


def _labels(samples, field):
    return np.array(samples.values(f"{field}.label"), dtype=object)


# -- charts: matplotlib PNGs ------------------------------------------------------------
def _mpl_figure(w=6.4, h=3.6):
    from matplotlib.figure import Figure  # no pyplot: leaves the user's backend alone

    fig = Figure(figsize=(w, h), dpi=110, layout="constrained")
    return fig, fig.subplots()


def _save(fig, path):
    fig.savefig(path)
    return path


def _png_histogram(path, scores, field):
    fig, ax = _mpl_figure()
    ax.hist(scores, bins=min(50, max(5, scores.size // 5)), color="#4C72B0")
    ax.set(xlabel=field, ylabel="samples", title=f"Distribution of {field} ({scores.size} samples)")
    return _save(fig, path)


def _png_bins(path, labels, series, ylabel, title, hline=None, hlabel=None):
    fig, ax = _mpl_figure(7.2, 3.8)
    x = np.arange(len(labels))
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, np.nan_to_num(values, nan=0.0), width, label=name)
    if hline is not None:
        ax.axhline(hline, color="k", linestyle="--", linewidth=1, label=hlabel)
    ax.set_xticks(x, labels, rotation=35, ha="right", fontsize=8)
    ax.set(xlabel="VoG percentile bin (low → high)", ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _png_boxes(path, groups, title):
    fig, ax = _mpl_figure()
    ax.boxplot(list(groups.values()), tick_labels=list(groups), showmeans=True)
    ax.set(ylabel="VoG", title=title)
    return _save(fig, path)


def _png_scatter(path, pc: A.PerClassVoG, field):
    fig, ax = _mpl_figure()
    x, y = np.array(pc.mean_vog, dtype=float), np.array(pc.fnr, dtype=float)
    ax.scatter(x, y, color="#C44E52")
    for name, xi, yi in zip(pc.classes, x, y):
        if np.isfinite(xi) and np.isfinite(yi):
            ax.annotate(name, (xi, yi), fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.set(
        xlabel=f"class mean {field}",
        ylabel="false-negative rate",
        title=f"Per class: mean VoG vs FNR (Pearson {pc.pearson:.2f}, Spearman {pc.spearman:.2f})",
    )
    return _save(fig, path)


# -- charts: plotly for the page ----------------------------------------------------------
def _plotly_div(fig, first: bool) -> str:
    fig.update_layout(template="plotly_white", height=380, margin=dict(l=50, r=20, t=50, b=60))
    return fig.to_html(full_html=False, include_plotlyjs=True if first else False)


def _bar_fig(labels, series, ytitle, title, hline=None, hlabel=None):
    import plotly.graph_objects as go

    fig = go.Figure(
        [
            go.Bar(x=labels, y=[None if not np.isfinite(v) else v for v in vals], name=name)
            for name, vals in series.items()
        ]
    )
    if hline is not None:
        fig.add_hline(y=hline, line_dash="dash", annotation_text=hlabel)
    fig.update_layout(title=title, xaxis_title="VoG percentile bin (low → high)", yaxis_title=ytitle, barmode="group")
    return fig


# -- image grids -------------------------------------------------------------------------
def _font(size):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def image_grid(filepaths, scores, path, title, grid_size=5, cell=CELL):
    """Write a ``grid_size``×``grid_size`` PNG of the images with their scores under each; returns ``path``."""
    from PIL import Image, ImageDraw

    cap, head, pad = 16, 26, 4
    cols = grid_size
    rows = max(1, -(-len(filepaths) // cols))
    W, H = cols * (cell + pad) + pad, head + rows * (cell + cap + pad) + pad
    canvas = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, 5), title, fill="black", font=_font(14))
    small = _font(11)
    for i, (fp, s) in enumerate(zip(filepaths, scores)):
        x0 = pad + (i % cols) * (cell + pad)
        y0 = head + (i // cols) * (cell + cap + pad)
        try:
            with Image.open(fp) as im:
                im = im.convert("RGB")
                scale = cell / max(im.size)
                size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
                im = im.resize(size, Image.NEAREST if scale >= 1 else Image.LANCZOS)
            canvas.paste(im, (x0 + (cell - im.width) // 2, y0 + (cell - im.height) // 2))
        except (OSError, ValueError):
            draw.rectangle([x0, y0, x0 + cell, y0 + cell], fill="#ddd")
            draw.text((x0 + 4, y0 + cell // 2), "unreadable", fill="black", font=small)
        draw.text((x0 + 2, y0 + cell + 1), f"{s:.3g}", fill="black", font=small)
    canvas.save(path)
    return path


def _grid_pair(fps, scores, out_dir, suffix, what, grid_size):
    k = grid_size * grid_size
    order = np.lexsort((np.arange(scores.size), scores))  # ascending, ties by position
    low, high = order[:k], np.lexsort((np.arange(scores.size), -scores))[:k]
    return {
        "lowest": image_grid(
            fps[low],
            scores[low],
            os.path.join(out_dir, f"grid_lowest{suffix}.png"),
            f"{len(low)} lowest VoG - {what}",
            grid_size,
        ),
        "highest": image_grid(
            fps[high],
            scores[high],
            os.path.join(out_dir, f"grid_highest{suffix}.png"),
            f"{len(high)} highest VoG - {what}",
            grid_size,
        ),
    }


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "class"


# -- the report: a context, then one function per section -------------------------------
@dataclasses.dataclass(frozen=True)
class Skip:
    """A section that cannot be built: ``reason`` is shown in the page and the summary."""

    reason: str


@dataclasses.dataclass(frozen=True)
class Block:
    """A built section: its HTML ``body``, a ``note`` shown above it, and its ``result`` (JSON
    numbers, stored under the section's key in the report's ``analysis``; None: nothing stored)."""

    body: str
    result: dict | None = None
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Section:
    """One section of the page: its ``key`` (the HTML id and the key in ``sections`` and
    ``analysis``), its ``title``, and ``build(ctx) -> Block | Skip``."""

    key: str
    title: str
    build: Callable[[ReportContext], Block | Skip]


@dataclasses.dataclass
class ReportContext:
    """What every section reads: the arguments of :func:`vog_report` (checked), the scored samples'
    values (``scores``, ``filepaths``, ``labels``, ``preds``, aligned; ``has`` marks the scored
    samples of ``samples``) and where the PNGs go (``pngs``: ``{name: path}`` written so far)."""

    samples: object
    out_dir: str
    vog_field: str
    label_field: str | None
    pred_field: str | None
    shuffled_field: str | None
    ood_tag: str | None
    ood_field: str | None
    early_field: str | None
    late_field: str | None
    grid_size: int
    per_class: bool
    bins: int
    schema: dict
    beside: ScoreFields
    has: np.ndarray
    scores: np.ndarray
    filepaths: np.ndarray
    labels: np.ndarray | None
    preds: np.ndarray | None
    pngs: dict = dataclasses.field(default_factory=dict)
    _plotly_inlined: bool = False

    def plot(self, fig) -> str:
        """A plotly figure as a div; the page's first one carries plotly.js."""
        div = _plotly_div(fig, not self._plotly_inlined)
        self._plotly_inlined = True
        return div

    def png(self, key) -> str:
        """The path of the section PNG ``key`` (recorded in ``pngs``)."""
        self.pngs[key] = os.path.join(self.out_dir, PNG_NAMES[key])
        return self.pngs[key]

    @staticmethod
    def png_link(key) -> str:
        return f'<p class="png">PNG: <a href="{PNG_NAMES[key]}">{PNG_NAMES[key]}</a></p>'

    @functools.cached_property
    def both(self) -> np.ndarray | None:
        """Which scored samples have a label and a prediction; None when none has (or either field is missing)."""
        if self.labels is None or self.preds is None:
            return None
        m = np.array([l is not None and p is not None for l, p in zip(self.labels, self.preds)], dtype=bool)
        return m if m.any() else None

    @functools.cached_property
    def shuffled(self):
        """``(flag, known)`` of ``shuffled_field`` over the scored samples, None without the field."""
        if not _exists(self.schema, self.shuffled_field):
            return None
        flag, known = A.read_flag(self.samples, field=self.shuffled_field)
        return flag[self.has], known[self.has]

    @property
    def shuffled_usable(self) -> bool:
        """Both shuffled and clean samples among the scored ones."""
        if self.shuffled is None:
            return False
        flag, known = self.shuffled
        return bool((flag & known).any() and (~flag & known).any())

    @functools.cached_property
    def ood(self):
        """``(flag, known, source)`` of the OOD marking (``ood_field`` wins over ``ood_tag``), None without one."""
        if self.ood_field:
            flag, known = A.read_flag(self.samples, field=self.ood_field)
            source = f"field {self.ood_field!r}"
        elif self.ood_tag:
            flag, known = A.read_flag(self.samples, tag=self.ood_tag)
            source = f"tag {self.ood_tag!r}"
        else:
            return None
        return flag[self.has], known[self.has], source

    @property
    def ood_usable(self) -> bool:
        return self.ood is not None and bool((self.ood[0] & self.ood[1]).any())


def report_context(samples, out_dir, **options) -> ReportContext:
    """Check :func:`vog_report`'s arguments (``options``: its keyword arguments, with its
    defaults; ``print_summary`` and ``sections`` are ignored) before anything is written, read
    the scored samples' values once, create ``out_dir``: what each section builds from."""
    bound = inspect.signature(vog_report).bind(samples, out_dir, **options)
    bound.apply_defaults()
    return _context(bound.arguments)


def _context(args: dict) -> ReportContext:
    """:func:`report_context` from ``vog_report``'s bound arguments (one place for their defaults)."""
    samples, out_dir, vog_field, label_field, pred_field = (
        args[k] for k in ("samples", "out_dir", "vog_field", "label_field", "pred_field")
    )
    shuffled_field, ood_tag, ood_field, early_field, late_field = (
        args[k] for k in ("shuffled_field", "ood_tag", "ood_field", "early_field", "late_field")
    )
    grid_size, per_class, bins = args["grid_size"], args["per_class"], args["bins"]
    schema = samples.get_field_schema()
    if vog_field not in schema:
        raise VoGError(f"field {vog_field!r} not found; run compute_vog(..., vog_field={vog_field!r}) first")
    for name, what in (
        (pred_field, "pred_field"),
        (ood_field, "ood_field"),
        (early_field, "early_field"),
        (late_field, "late_field"),
    ):
        _require(schema, name, what)
    if int(grid_size) < 1:
        raise VoGError(f"grid_size must be ≥ 1, got {grid_size}")
    _check_bins(bins)  # always, not only when a section that bins runs
    _check_score_fields(schema, early_field=early_field, late_field=late_field)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise VoGError(
            f"out_dir={str(out_dir)!r} is a file, not a directory; choose a folder for report.html and the PNGs"
        )
    beside = score_fields(samples, vog_field)
    if early_field is None and late_field is None and beside.window("early") and beside.window("late"):
        early_field, late_field = beside.window("early"), beside.window("late")

    ids, scores, fps = samples.values(["id", vog_field, "filepath"])
    has = np.array([s is not None for s in scores], dtype=bool)
    if not has.any():
        raise VoGError(f"no sample has a value in {vog_field!r}; run compute_vog first")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise VoGError(
            f"cannot create out_dir={str(out_dir)!r} ({e.strerror}); choose a folder you can write"
        ) from None
    return ReportContext(
        samples=samples,
        out_dir=out_dir,
        vog_field=vog_field,
        label_field=label_field,
        pred_field=pred_field,
        shuffled_field=shuffled_field,
        ood_tag=ood_tag,
        ood_field=ood_field,
        early_field=early_field,
        late_field=late_field,
        grid_size=int(grid_size),
        per_class=per_class,
        bins=bins,
        schema=schema,
        beside=beside,
        has=has,
        scores=np.array([x for x in scores if x is not None], dtype=np.float64),
        filepaths=np.array(fps, dtype=object)[has],
        labels=_labels(samples, label_field)[has] if _exists(schema, label_field) else None,
        preds=_labels(samples, pred_field)[has] if pred_field else None,
    )


def build_distribution(ctx: ReportContext) -> Block:
    import plotly.graph_objects as go

    s, vog_field = ctx.scores, ctx.vog_field
    _png_histogram(ctx.png("distribution"), s, vog_field)
    desc = describe(s)
    fig = go.Figure(go.Histogram(x=s, nbinsx=50))
    fig.update_layout(title=f"Distribution of {vog_field}", xaxis_title=vog_field, yaxis_title="samples")
    return Block(ctx.plot(fig) + _table(desc) + ctx.png_link("distribution"), desc)


def build_error(ctx: ReportContext) -> Block | Skip:
    if ctx.labels is None:
        return Skip(f"label field {ctx.label_field!r} not found")
    if ctx.preds is None:
        return Skip("no predictions: pass pred_field (CLI: --pred-field)")
    both = ctx.both
    if both is None:
        return Skip("no scored sample has both a label and a prediction")
    s = ctx.scores
    correct = (ctx.labels[both] == ctx.preds[both]).astype(bool)
    eb = A.error_by_bin(s[both], correct, ctx.bins)
    det = A.detection_metrics(s[both], ~correct)
    _png_bins(
        ctx.png("error"),
        eb.labels,
        {"error rate": eb.error_rate},
        "error rate",
        "Error rate by VoG decile",
        eb.overall_error,
        "overall error",
    )
    fig = _bar_fig(
        eb.labels,
        {"error rate": eb.error_rate},
        "error rate",
        "Error rate by VoG decile",
        eb.overall_error,
        f"overall {eb.overall_error:.3f}",
    )
    rows = {
        "overall error": eb.overall_error,
        "bottom bin error": eb.error_rate[0],
        "top bin error": eb.error_rate[-1],
        "AUROC (misclassified)": det.auroc,
        "AUPRC (misclassified)": det.auprc,
        "samples": eb.n,
    }
    return Block(
        ctx.plot(fig) + _table(rows) + ctx.png_link("error"),
        {"by_bin": eb.to_dict(), "misclassified_detection": det.to_dict()},
        eb.note,
    )


def build_windows(ctx: ReportContext) -> Block | Skip:
    early_field, late_field = ctx.early_field, ctx.late_field
    if not (early_field and late_field):
        early = window_field_name(ctx.vog_field, "early")
        return Skip(f"no window fields: compute_vog(..., windows='thirds') writes {early}/_late")
    if ctx.both is None:
        return Skip("needs labels and predictions (pred_field)")
    try:
        wc = A.window_comparison_from_view(
            ctx.samples, early_field, late_field, ctx.label_field, ctx.pred_field, ctx.bins
        )
    except VoGError as e:
        return Skip(str(e))
    series = {f"early ({early_field})": wc.early.error_rate, f"late ({late_field})": wc.late.error_rate}
    _png_bins(
        ctx.png("windows"),
        wc.early.labels,
        series,
        "error rate",
        "Error by VoG decile: early vs late window",
        wc.late.overall_error,
        "overall error",
    )
    rows = {
        "early": wc.early_trend["direction"],
        "early slope / bin": wc.early_trend["slope"],
        "late": wc.late_trend["direction"],
        "late slope / bin": wc.late_trend["slope"],
        "rankings reversed": wc.reversed,
    }
    body = ctx.plot(_bar_fig(wc.early.labels, series, "error rate", "Early vs late window"))
    return Block(body + _table(rows) + ctx.png_link("windows"), wc.to_dict())


def build_memorization(ctx: ReportContext) -> Block | Skip:
    if ctx.shuffled is None:
        return Skip(f"no field {ctx.shuffled_field!r}: fov.shuffle_labels(...) marks shuffled samples")
    if not ctx.shuffled_usable:
        return Skip(f"{ctx.shuffled_field!r} needs both True and False values among the scored samples")
    import plotly.graph_objects as go

    s, (flag, known) = ctx.scores, ctx.shuffled
    tt = A.welch_ttest(s[known], flag[known])
    det = A.detection_metrics(s[known], flag[known])
    groups = {f"clean (n={tt.n_other})": s[known & ~flag], f"shuffled (n={tt.n_flagged})": s[known & flag]}
    _png_boxes(ctx.png("memorization"), groups, f"Welch t = {tt.t:.2f}, p = {tt.p_value:.2g}")
    fig = go.Figure([go.Box(y=v, name=k, boxmean="sd") for k, v in groups.items()])
    fig.update_layout(title="VoG of shuffled vs clean samples", yaxis_title=ctx.vog_field)
    rows = {
        "clean mean ± std": f"{tt.mean_other:.4g} ± {tt.std_other:.4g} (n={tt.n_other})",
        "shuffled mean ± std": f"{tt.mean_flagged:.4g} ± {tt.std_flagged:.4g} (n={tt.n_flagged})",
        "Welch t": tt.t,
        "dof": tt.dof,
        "p-value": tt.p_value,
        "AUROC": det.auroc,
        "AUPRC": det.auprc,
        "precision@k=#shuffled": det.r_precision,
    }
    return Block(
        ctx.plot(fig) + _table(rows) + ctx.png_link("memorization"),
        {"ttest": tt.to_dict(), "detection": det.to_dict()},
        tt.note,
    )


def build_ood(ctx: ReportContext) -> Block | Skip:
    if ctx.ood is None:
        return Skip("no OOD marking given")
    oflag, oknown, source = ctx.ood
    if not ctx.ood_usable:
        return Skip(f"no scored sample is flagged by {source}")
    # the raw score where there is one: z-scoring within the class a foreign image was assigned
    # to hides what makes it foreign (docs/results.md); the section says which score it uses
    ood_scores, ood_field_used = ctx.scores, ctx.vog_field
    if ctx.beside.raw:
        raw_all = np.array(ctx.samples.values(ctx.beside.raw), dtype=object)[ctx.has]
        if all(v is not None for v in raw_all):
            ood_scores, ood_field_used = raw_all.astype(np.float64), ctx.beside.raw
    sh = A.share_by_percentile(ood_scores[oknown], oflag[oknown], ctx.bins)
    det = A.detection_metrics(ood_scores[oknown], oflag[oknown])
    _png_bins(
        ctx.png("ood"),
        sh.labels,
        {"OOD share": sh.share},
        "share of OOD samples",
        f"OOD share by VoG percentile ({source})",
        sh.overall_share,
        "overall share",
    )
    fig = _bar_fig(
        sh.labels,
        {"OOD share": sh.share},
        "share of OOD samples",
        "OOD share by VoG percentile",
        sh.overall_share,
        f"overall {sh.overall_share:.3f}",
    )
    rows = {
        "score": ood_field_used,
        "OOD samples": f"{sh.n_flagged} of {sh.n}",
        "top-bin over-index": sh.over_index[-1],
        "bottom-bin over-index": sh.over_index[0],
        "AUROC": det.auroc,
        "AUPRC": det.auprc,
    }
    return Block(
        ctx.plot(fig) + _table(rows) + ctx.png_link("ood"),
        {"share": sh.to_dict(), "detection": det.to_dict(), "source": source, "score_field": ood_field_used},
        "; ".join(x for x in (sh.note, det.note) if x),
    )


def build_per_class(ctx: ReportContext) -> Block | Skip:
    if not ctx.per_class:
        return Skip("per_class=False")
    if ctx.both is None:
        return Skip("needs labels and predictions (pred_field)")
    try:
        pc = A.per_class_from_view(ctx.samples, ctx.vog_field, ctx.label_field, ctx.pred_field)
    except VoGError as e:
        return Skip(str(e))
    import plotly.graph_objects as go

    used = ctx.beside.raw_or_score
    _png_scatter(ctx.png("per_class"), pc, used)
    fig = go.Figure(
        go.Scatter(x=pc.mean_vog, y=pc.fnr, text=pc.classes, mode="markers+text", textposition="top center")
    )
    fig.update_layout(
        title=f"Class mean {used} vs FNR", xaxis_title=f"class mean {used}", yaxis_title="false-negative rate"
    )
    rows = {
        "Pearson r": pc.pearson,
        "Pearson p": pc.pearson_p,
        "Spearman ρ": pc.spearman,
        "classes": pc.n_classes_used,
    }
    return Block(ctx.plot(fig) + _table(rows) + ctx.png_link("per_class"), {**pc.to_dict(), "field": used}, pc.note)


def build_detectors(ctx: ReportContext) -> Block | Skip:
    """VoG (z-scored, raw) and the companions side by side, per flag the user has."""
    flags = []  # (the question it answers, as the verdict names it; the flag; how it is read)
    if ctx.shuffled_usable:
        flags.append(("label-errors", "shuffled labels", dict(flag_field=ctx.shuffled_field)))
    if ctx.ood_usable:
        kw = dict(flag_field=ctx.ood_field) if ctx.ood_field else dict(tag=ctx.ood_tag)
        flags.append(("ood", f"out-of-distribution ({ctx.ood[2]})", kw))
    if ctx.preds is not None and ctx.labels is not None:
        flags.append(
            (
                "misclassified",
                f"misclassified ({ctx.pred_field} ≠ {ctx.label_field})",
                dict(misclassified=ctx.pred_field, label_field=ctx.label_field),
            )
        )
    tables, body = {}, ""
    for kind, what, kw in flags:
        try:
            t = A.detector_table_from_view(ctx.samples, ctx.vog_field, **kw)
        except VoGError:
            continue
        tables[what] = {**t.to_dict(), "kind": kind}
        body += f"<h3>{html.escape(what)}</h3>" + _rows_table(t)
    if not tables:
        return Skip("no flag to compare against: shuffled labels, an OOD marking, or predictions (pred_field)")
    body += f'<p class="verdict" id="verdict">{html.escape(_verdict(tables, ctx.beside))}</p>'
    return Block(
        body,
        tables,
        "best first by AUROC; 'low' scores flag their lowest values "
        "(margin, max-softmax); precision@k at k = the number flagged",
    )


def build_grids(ctx: ReportContext) -> Block:
    fps, s, labels, out_dir, grid_size = ctx.filepaths, ctx.scores, ctx.labels, ctx.out_dir, ctx.grid_size
    grids = {"all": _grid_pair(fps, s, out_dir, "", "all classes", grid_size)}
    note = ""
    if ctx.per_class and labels is not None:
        classes = [c for c in dict.fromkeys(sorted((l for l in labels if l is not None), key=str))]
        if len(classes) > MAX_CLASS_GRIDS:
            note = f"per-class grids for the first {MAX_CLASS_GRIDS} of {len(classes)} classes"
            classes = classes[:MAX_CLASS_GRIDS]
        for c in classes:
            m = labels == c
            grids[str(c)] = _grid_pair(fps[m], s[m], out_dir, f"_{_safe(c)}", f"class {c}", grid_size)
    elif ctx.per_class:
        note = f"label field {ctx.label_field!r} not found: overall grids only"
    for name, pair in grids.items():
        for kind, path in pair.items():
            ctx.pngs[f"grid_{kind}" + ("" if name == "all" else f"_{name}")] = path
    body = "".join(
        f'<h3>{html.escape("All samples" if name == "all" else f"Class {name}")}</h3><div class="grids">'
        + "".join(_img(p) for p in pair.values())
        + "</div>"
        for name, pair in grids.items()
    )
    result = {name: {k: os.path.basename(p) for k, p in pair.items()} for name, pair in grids.items()}
    return Block(body, result, note)


#: The report's sections, in page order.
SECTIONS = (
    Section("distribution", "Score distribution", build_distribution),
    Section("error", "Error rate by VoG decile (Fig. 4)", build_error),
    Section("windows", "Early vs late checkpoint window (Fig. 7)", build_windows),
    Section("memorization", "Shuffled labels: memorization (Fig. 8)", build_memorization),
    Section("ood", "Out-of-distribution samples by VoG percentile (Fig. 6 right)", build_ood),
    Section("per_class", "Per-class mean VoG vs false-negative rate (Fig. 10)", build_per_class),
    Section("detectors", "Detectors side by side: VoG and its training-dynamics companions", build_detectors),
    Section("grids", "Lowest and highest VoG images (Figs. 2, 3, 5)", build_grids),
)
SECTION_KEYS = tuple(sec.key for sec in SECTIONS)


def render_section(section: Section, built: Block | Skip) -> str:
    """A built (or skipped) section as its ``<section id=key>`` block of the page."""
    note = built.reason if isinstance(built, Skip) else built.note
    note_html = f'<p class="note">{html.escape(note)}</p>' if note else ""
    body = "" if isinstance(built, Skip) else built.body
    return f'<section id="{section.key}"><h2>{html.escape(section.title)}</h2>{note_html}{body}</section>'


def _chosen(sections) -> set[str]:
    if sections is None:
        return set(SECTION_KEYS)
    if isinstance(sections, str):
        sections = [sections]
    unknown = [k for k in sections if k not in SECTION_KEYS]
    if unknown:
        raise VoGError(f"sections: {unknown[0]!r} is not a section of the report; choose from {list(SECTION_KEYS)}")
    return set(sections)


def vog_report(
    samples,
    out_dir,
    vog_field="vog",
    label_field="ground_truth",
    pred_field=None,
    shuffled_field="label_shuffled",
    ood_tag="ood",
    ood_field=None,
    early_field=None,
    late_field=None,
    grid_size=5,
    per_class=True,
    print_summary=True,
    bins=10,
    sections=None,
) -> dict:
    """Write ``out_dir/report.html`` and PNGs of every VoG analysis; store the results in the run.

    Sections (:data:`SECTIONS`, each built by its own function from a :class:`ReportContext`;
    each skipped, with a note in the page, when its inputs are missing):

    - ``distribution``: histogram of ``vog_field`` (``vog_histogram.png``).
    - ``error``: error rate by VoG decile with the overall error (paper Fig. 4) and VoG as a
      detector of misclassification; needs ``label_field`` and ``pred_field``
      (``error_by_decile.png``).
    - ``windows``: early- vs late-window decile error (Fig. 7); needs predictions and
      ``early_field``/``late_field`` (default: the run's ``{vog_field}_early``/``_late`` when both exist)
      (``window_deciles.png``).
    - ``memorization``: Welch t-test and detection metrics of ``shuffled_field`` True vs False
      (Fig. 8) (``shuffled_ttest.png``).
    - ``ood``: share of OOD samples (``ood_field`` True, else tag ``ood_tag``) per VoG
      percentile and its over-index (Fig. 6 right), and detection metrics (``ood_share.png``).
    - ``per_class``: class mean raw VoG (the raw field beside ``vog_field`` when present) vs
      false-negative rate (Fig. 10); needs predictions (``per_class_vog_vs_fnr.png``).
    - ``detectors``: for each flag present (shuffled labels, the OOD marking, misclassified when
      ``pred_field`` is given), AUROC / AUPRC / precision@k of VoG (z-scored and raw) and of each
      companion field of the run, best first (:func:`fiftyone_vog.analysis.detector_table`).
    - ``grids``: ``grid_size``² lowest- and highest-VoG images overall and, with
      ``per_class=True``, per ``label_field`` class (Figs. 2, 3, 5) (``grid_{lowest,highest}[_CLASS].png``).

    Args:
        samples: a FiftyOne dataset or view; only samples with a ``vog_field`` value are analysed.
        out_dir: folder for ``report.html`` and the PNGs (created).
        vog_field: the score field (and run key) to analyse.
        label_field, pred_field: ``fo.Classification`` fields with labels and predictions.
        shuffled_field: boolean field from :func:`shuffle_labels` (None values are left out).
        ood_tag, ood_field: how out-of-distribution samples are marked (a field wins over the tag).
        early_field, late_field: window score fields for the Fig. 7 comparison.
        grid_size: images per grid side. per_class: per-class grids and the per-class section.
        print_summary: print a short text summary. bins: number of quantile bins (10 = deciles).
        sections: the keys of the sections to build (default: all); the others are listed as
            skipped ("left out").

    Returns:
        ``{"html", "out_dir", "pngs": {name: path}, "sections": {name: {"status", "note"}},
        "analysis": {section: JSON dict}, "summary": text}``. The same ``analysis`` is saved
        on the run ``vog_field`` (``dataset.load_run_results(vog_field).analysis``) when the
        run exists.

    Raises:
        VoGError: ``vog_field`` missing or unscored, an explicitly named field missing, or an
        unknown section.
    """
    args = dict(locals())  # first: the arguments, nothing else
    chosen = _chosen(sections)
    ctx = _context(args)
    statuses, results, blocks = {}, {}, []
    for sec in SECTIONS:
        built = sec.build(ctx) if sec.key in chosen else Skip(f"left out (sections={sorted(chosen)})")
        if isinstance(built, Skip):
            statuses[sec.key] = {"status": "skipped", "note": built.reason}
        else:
            statuses[sec.key] = {"status": "ok", "note": built.note}
            if built.result is not None:
                results[sec.key] = built.result
        blocks.append(render_section(sec, built))

    summary = _summary(ctx, statuses, results)
    html_path = os.path.join(out_dir, "report.html")
    _write_html(html_path, samples, vog_field, summary, blocks)
    stored = _store(samples, vog_field, results, statuses, html_path)
    if print_summary:
        print(summary)
        print(f"report: {html_path}")
    return {
        "html": html_path,
        "out_dir": out_dir,
        "pngs": ctx.pngs,
        "sections": statuses,
        "analysis": A.to_jsonable(results),
        "summary": summary,
        "stored_in_run": stored,
    }


def _fmt(v):
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        return "n/a" if not np.isfinite(v) else f"{v:.4g}"
    return str(v)


def _table(rows: dict) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows.items())
    return f'<table class="stats">{body}</table>'


def _rows_table(t) -> str:
    """A :class:`~fiftyone_vog.analysis.DetectorTable` as an HTML table, best first."""
    head = "<tr><th>score</th><th>flags</th><th>AUROC</th><th>AUPRC</th><th>precision@k</th></tr>"
    body = "".join(
        f"<tr><td>{html.escape(r['score'])}</td><td>{html.escape(r['direction'])}</td><td>{_fmt(r['auroc'])}</td>"
        f"<td>{_fmt(r['auprc'])}</td><td>{_fmt(r['precision_at_k'])}</td></tr>"
        for r in t.rows
    )
    caption = (
        f"<caption>{t.n_flagged} of {t.n} flagged (chance: AUROC 0.5, AUPRC {t.base_rate:.3g}); k = {t.k}</caption>"
    )
    return f'<table class="stats detectors">{caption}{head}{body}</table>'


def _img(path) -> str:
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode()
    name = html.escape(os.path.basename(path))
    return f'<figure><img alt="{name}" src="data:image/png;base64,{data}"><figcaption>{name}</figcaption></figure>'


def _verdict(tables: dict, beside) -> str:
    """The one-line verdict (:func:`~fiftyone_vog.analysis.score_verdict`) of the detectors
    section's ``{flag: table}``, each table marked with the question it answers (``kind``)."""
    return A.score_verdict({t["kind"]: t for t in tables.values()}, beside)


def _summary(ctx, sections, results) -> str:
    samples, vog_field, s = ctx.samples, ctx.vog_field, ctx.scores
    name = samples._dataset.name
    lines = [
        f"VoG report for {name!r}: {s.size} samples scored in {vog_field!r} "
        f"(mean {s.mean():.4g}, median {np.median(s):.4g}, max {s.max():.4g})"
    ]
    if "error" in results:
        eb = results["error"]["by_bin"]
        lines.append(
            f"  error: overall {_fmt(eb['overall_error'])}, lowest decile {_fmt(eb['error_rate'][0])}, "
            f"highest decile {_fmt(eb['error_rate'][-1])}"
        )
    if "windows" in results:
        w = results["windows"]
        lines.append(f"  windows: early — {w['early_trend']['direction']}; late — {w['late_trend']['direction']}")
    if "memorization" in results:
        t = results["memorization"]["ttest"]
        lines.append(
            f"  shuffled vs clean by {vog_field}: mean {_fmt(t['mean_flagged'])} vs {_fmt(t['mean_other'])}, "
            f"Welch p = {_fmt(t['p_value'])}, AUROC of {vog_field} {_fmt(results['memorization']['detection']['auroc'])}"
        )
    if "ood" in results:
        o, by = results["ood"]["share"], results["ood"]["score_field"]
        lines.append(
            f"  OOD by {by}: {o['n_flagged']} samples, top-bin over-index {_fmt(o['over_index'][-1])}, "
            f"AUROC of {by} {_fmt(results['ood']['detection']['auroc'])}"
        )
    if "per_class" in results:
        lines.append(f"  per class: Pearson(mean VoG, FNR) = {_fmt(results['per_class']['pearson'])}")
    tables = results.get("detectors", {})
    if tables:
        lines.append("  detectors side by side, best first by AUROC ('low': a low value flags):")
        for flag, t in tables.items():
            lines += A.detector_lines(flag, t)
    lines.append("  " + _verdict(tables, ctx.beside))
    skipped = [k for k, v in sections.items() if v["status"] == "skipped"]
    if skipped:
        notes = [f"{k} ({sections[k]['note']})" for k in skipped]
        lines.append("  skipped: " + "; ".join(notes))
    return "\n".join(lines)


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
.note{background:#fff6dd;border-left:4px solid #e0b000;padding:.4em .8em}
table.stats{border-collapse:collapse;margin:.5em 0}table.stats th,table.stats td{border:1px solid #ddd;padding:.2em .6em;text-align:left}
.grids{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}pre{background:#f6f6f6;padding:.6em;white-space:pre-wrap}"""


def _write_html(path, samples, vog_field, summary, blocks):
    name = html.escape(samples._dataset.name)
    when = datetime.datetime.now().isoformat(timespec="seconds")
    doc = (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>VoG report: {name}</title><style>{CSS}</style></head>'
        f"<body><h1>VoG report: {name}</h1><p>Score field <code>{html.escape(vog_field)}</code>; "
        f"{len(samples)} samples in the analysed collection; generated {when} by fiftyone-vog.</p>"
        f"<pre>{html.escape(summary)}</pre>{''.join(blocks)}</body></html>"
    )
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(doc)
    os.replace(tmp, path)  # never a half-written report


def _store(samples, vog_field, results, sections, html_path) -> bool:
    """Save the analysis on the run ``vog_field`` (``load_run_results(vog_field).analysis``)."""
    ds = samples._dataset
    if not ds.has_run(vog_field):
        return False
    res = ds.load_run_results(vog_field)
    if res is None:
        res = ds.init_run_results(vog_field)
    res.analysis = A.to_jsonable(results)
    res.report = {
        "html": os.path.abspath(html_path),
        "sections": sections,
        "num_samples": len(samples),
        "view": [repr(stage) for stage in getattr(samples, "_stages", [])],
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    ds.save_run_results(vog_field, res)
    return True
