"""End to end in the real App, the path a user walks (README, "In the FiftyOne App"; issue 11):
headless Chromium opens the operator browser, runs Compute VoG with a checkpoint that is corrupt
(the error notification must show; the form reopened with the values where the App keeps it
open), fixes the form and runs it, sorts the grid by the new field from the grid's own "Sort by"
(the first tile is then the hardest sample), saves the VoG views from the operator browser and
opens one from the saved-view selector (without a reload where FiftyOne lists it), clicks a bar of
the VoG panel (its "Which score" line), exports a saved view from the App (the files on disk,
nothing else deleted), and manages the run (its info, a rename, a delete after the confirmation).
Two xfail tests record what FiftyOne 1.22 does not (yet) do: keep the reopened form open (a
race: it passes some runs) and list a new saved view without a reload.

The tests run in order on one App server and one dataset. Screenshots go to a temporary folder,
or to $FOV_SCREENSHOTS when set — `FOV_SCREENSHOTS=docs/images make test` refreshes the README's
and docs/app.md's pictures (a failing step adds debug-*.png/html there: do not commit those)."""

import os
import re
import socket

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the app fixture skips the tests
    expect = None

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} missing: run `make browser-deps` (Debian chromium)"
    ),
]
IMAGES = os.environ.get("FOV_SCREENSHOTS") or os.path.join(
    os.environ["FIFTYONE_DATABASE_DIR"], os.pardir, "screenshots"
)
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
TIMEOUT = 120_000  # ms: the first form resolve imports torch in the App server
#: what the walk saw where FiftyOne 1.22 may not do its part: "form", what the form held when the App
#: reopened it after the failed run (None: not reopened); "selector", whether a new saved view was
#: listed without a page reload
SEEN = {}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def torchscript_checkpoints(checkpoint_dir, tmp_root):
    """The trained checkpoints as TorchScript: the App form needs no model name (the server allows
    TorchScript: see the app fixture)."""
    import glob

    import torch

    from conftest import small_model

    out = os.path.join(tmp_root, "ts-ckpts")
    os.makedirs(out, exist_ok=True)
    for path in sorted(glob.glob(os.path.join(checkpoint_dir, "epoch_*.pt"))):
        model = small_model()
        model.load_state_dict(torch.load(path, weights_only=True))
        torch.jit.save(torch.jit.script(model.eval()), os.path.join(out, os.path.basename(path)))
    return out


@pytest.fixture(scope="module")
def app(image_dir):
    """A dataset with predictions, the plugin installed, and the App serving it."""
    pytest.importorskip("playwright")
    import fiftyone as fo

    from fiftyone_vog.app.install import install_plugin

    from conftest import CLASSES, build_dataset

    install_plugin()
    ds = build_dataset(*image_dir, name=f"vog-browser-{os.getpid()}")
    # a prediction field so that the panel can show error rate by decile: every 4th sample is wrong
    labels = ds.values("ground_truth.label")
    preds = [CLASSES[(CLASSES.index(l) + (i % 4 == 0)) % len(CLASSES)] for i, l in enumerate(labels)]
    ds.set_values("predictions", [fo.Classification(label=p) for p in preds])
    port = _free_port()
    # the compute test uses TorchScript checkpoints, which are code: the server's owner allows them
    allow = os.environ.get("FIFTYONE_VOG_ALLOW_IMPORTS")
    os.environ["FIFTYONE_VOG_ALLOW_IMPORTS"] = "1"
    session = fo.launch_app(ds, remote=True, port=port, auto=False)
    yield ds, f"http://localhost:{port}/datasets/{ds.name}", session
    session.close()
    if allow is None:
        os.environ.pop("FIFTYONE_VOG_ALLOW_IMPORTS", None)
    else:
        os.environ["FIFTYONE_VOG_ALLOW_IMPORTS"] = allow
    ds.delete()


@pytest.fixture(scope="module")
def page(app):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(TIMEOUT)
        yield page
        browser.close()


def _shot(page, name):
    os.makedirs(IMAGES, exist_ok=True)
    page.screenshot(path=os.path.join(IMAGES, name))


def _settle(page):
    """Before a README picture: the grid draws its tiles after the step's own event (the App keeps
    a stream open, so there is no network-idle moment to wait for); a second for the pixels only."""
    page.wait_for_timeout(1000)


def _debug(page, name):
    """On a failure: what the page showed, for the developer (not a README picture)."""
    try:
        _shot(page, f"debug-{name}.png")
        with open(os.path.join(IMAGES, f"debug-{name}.html"), "w") as f:
            f.write(page.content())
    except Exception:  # the page is gone: nothing to keep
        pass


@pytest.fixture(autouse=True)
def debug(page, request):
    """Keep a screenshot and the HTML of the page when the test fails (its call report is counted
    before its fixtures are torn down)."""
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed:
        _debug(page, request.node.name)


def _operator(page, search_text, name):
    """Open an operator's form from the operator browser (the backtick key), as a user does."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("`")
    search = page.get_by_placeholder("Search operations by name...")
    search.wait_for()
    search.fill(search_text)
    page.get_by_text(name, exact=True).click()
    return page.locator("[data-cy=operators-prompt-modal]")


def _select(page, modal, label, value):
    """Choose ``value`` in the form's dropdown labelled ``label`` (a MUI select)."""
    field = modal.get_by_text(label, exact=True).locator("xpath=ancestor::*[.//*[@role='combobox']][1]")
    field.get_by_role("combobox").first.click()
    page.get_by_role("option", name=value, exact=True).click()


def _dismiss_popups(page):
    dismiss = page.get_by_text("Dismiss", exact=True)
    try:
        dismiss.wait_for(timeout=5000)
        dismiss.click()
    except Exception:  # no promotion shown
        pass


def _close_dialogs(page):
    """Close what the operator left open (its result prompt)."""
    dialog = page.locator(".MuiDialog-root")
    for _ in range(3):
        if dialog.count() == 0:
            return
        page.keyboard.press("Escape")
        page.wait_for_timeout(500)
    for name in ("Close", "Done", "Cancel"):
        if dialog.count() and page.get_by_role("button", name=name).count():
            page.get_by_role("button", name=name).first.click()
    _shot(page, "debug-dialog.png")
    dialog.first.wait_for(state="detached", timeout=10000)


def _sidebar_group_of(page, paths):
    """``{path: title of the sidebar group it is listed under}``; the sidebar's rows are absolutely
    positioned siblings, so a field belongs to the nearest group header above it."""
    return page.evaluate(
        """paths => {
        const top = el => el.getBoundingClientRect().top;
        const headers = [...document.querySelectorAll('[data-cy^="sidebar-group-"][title]')].map(h => [h.title, top(h)]);
        const out = {};
        for (const p of paths) {
            const row = document.querySelector(`[data-cy="sidebar-field-container-${p}"]`);
            const above = row ? headers.filter(([, y]) => y < top(row)).sort((a, b) => b[1] - a[1]) : [];
            out[p] = above.length ? above[0][0] : null;
        }
        return out;
    }""",
        paths,
    )


@pytest.fixture(scope="module")
def broken_checkpoints(torchscript_checkpoints, tmp_root):
    """The same checkpoints with the last one corrupt: the form checks the first file only (it
    loads one checkpoint as you type), so the run fails when it reads the last one."""
    import shutil

    out = os.path.join(tmp_root, "ts-ckpts-broken")
    shutil.copytree(torchscript_checkpoints, out, dirs_exist_ok=True)
    with open(os.path.join(out, "epoch_5.pt"), "wb") as f:
        f.write(b"not a checkpoint: the training job died while writing it")
    return out


def test_compute_vog_from_the_operator_browser(app, page, torchscript_checkpoints, broken_checkpoints):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    ds, url, session = app
    page.goto(url, timeout=TIMEOUT)
    page.get_by_text("40 samples").wait_for()
    _dismiss_popups(page)

    modal = _operator(page, "Compute VoG", "compute_vog")
    page.get_by_text("Checkpoints", exact=True).wait_for()
    page.wait_for_timeout(1500)  # the form's first validation (the App's debounce: 750 ms)
    assert page.get_by_text("Required property").count() == 0  # nothing typed yet: no error shown
    assert page.get_by_text("enter the Checkpoints").count() == 0  # (the disabled Execute's tooltip says it)
    expect(page.get_by_role("button", name="Execute")).to_be_disabled()  # ... but nothing to run either
    checkpoints = modal.locator("input").first

    # 1. a run that fails at run time: the error notification, and the form again with the values
    broken = os.path.join(broken_checkpoints, "epoch_*.pt")
    checkpoints.fill(broken)
    page.get_by_text("5 checkpoints: epoch_1.pt … epoch_5.pt").wait_for()  # resolved on the server
    execute = page.get_by_role("button", name="Execute")
    expect(execute).to_be_enabled(timeout=TIMEOUT)  # the locator, re-resolved: the form re-renders it
    execute.click()
    error = page.get_by_text("cannot read checkpoint").first
    error.wait_for()
    assert "epoch_5.pt" in error.inner_text()
    ds.reload()
    assert "vog" not in ds.get_field_schema()  # nothing written
    # app/reporting.py reopens the form with the values (prompt_user_for_operation in the stream).
    # FiftyOne 1.22's App may close it again: when the failed streaming run ends without an error
    # and without output, the first prompt's effect sets the one "promptingOperator" state to null,
    # and that state may already hold the reopened form. Seen both ways on the same machine.
    try:
        page.get_by_text("5 checkpoints: epoch_1.pt … epoch_5.pt").wait_for(timeout=15000)
        SEEN["form"] = page.locator("[data-cy=operators-prompt-modal] input").first.input_value()
        assert SEEN["form"] == broken  # the values the user typed
    except PlaywrightTimeout:  # not reopened: the user opens the form again
        SEEN["form"] = None
    _shot(page, "app-error.png")
    alert = page.locator("[role=alert]").filter(has_text="cannot read checkpoint")
    alert.locator("button").first.click()  # the notification's close button: it covers Execute
    alert.wait_for(state="detached")

    # 2. fix the form and run it
    if SEEN["form"] is None:
        modal = _operator(page, "Compute VoG", "compute_vog")
        page.get_by_text("Checkpoints", exact=True).wait_for()
    checkpoints = page.locator("[data-cy=operators-prompt-modal] input").first
    checkpoints.fill(os.path.join(torchscript_checkpoints, "epoch_*.pt"))
    page.get_by_text("5 checkpoints: epoch_1.pt … epoch_5.pt").wait_for()
    _shot(page, "app-form.png")
    execute = page.get_by_role("button", name="Execute")
    expect(execute).to_be_enabled(timeout=TIMEOUT)  # the locator, re-resolved: the form re-renders it
    execute.click()

    # the App reloads the dataset when the operator finishes: the VoG fields appear in the sidebar
    page.get_by_text("vog_raw", exact=True).wait_for()
    # progress came as notifications: no progress dialog with a Done button, during or after the run
    assert page.get_by_role("button", name="Done").count() == 0
    ds.reload()
    assert ds.count("vog") == 40 and ds.count("vog_raw") == 40
    assert ds.get_run_info("vog").config.model is None  # TorchScript: nothing imported
    assert [(g.name, g.paths) for g in ds.app_config.sidebar_groups if g.name == "VoG"] == [
        ("VoG", ["vog", "vog_raw", "vog_loss", "vog_margin", "vog_maxprob", "vog_energy"])  # VoG and its companions
    ]
    _close_dialogs(page)
    # The grid's "Sort by" lists indexed fields only where the App's query performance mode is on;
    # compute_vog indexes its score, raw score and companions (issue 11, part 7; issue 16)
    assert {"vog", "vog_raw"} <= set(ds.list_indexes())
    # The App applies the dataset's sidebar groups when it loads the dataset (its reload_dataset keeps the
    # groups on screen and lists new fields under PRIMITIVES); the operator's message asks for a page reload.
    page.reload()
    page.get_by_text("40 samples").wait_for()
    header = page.locator("[data-cy=sidebar-group-VOG]")
    header.wait_for()
    assert header.is_visible()
    groups = _sidebar_group_of(page, ["vog", "vog_raw", "ground_truth", "filepath"])
    assert groups == {"vog": "VOG", "vog_raw": "VOG", "ground_truth": "LABELS", "filepath": "PRIMITIVES"}, groups


@pytest.mark.xfail(
    strict=False,
    reason="FiftyOne 1.22 may close the reopened form when the failed streaming run "
    "ends, a race (see test_compute_vog_from_the_operator_browser)",
)
def test_failed_run_reopened_the_form_with_its_values(broken_checkpoints):
    assert SEEN.get("form") == os.path.join(broken_checkpoints, "epoch_*.pt")


def test_sort_the_grid_by_vog(app, page):
    """The grid's own "Sort by" control, highest VoG first; the first tile is the hardest sample."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    ds, url, session = app
    sort = page.get_by_placeholder("Sort by")
    sort.click()
    sort.fill("vog")
    page.locator("[data-cy=selector-results-container], .MuiPaper-root").get_by_text("vog", exact=True).first.click()
    page.get_by_title("Ascending").click()  # the arrow next to the field: descending
    page.get_by_title("Descending").wait_for()
    page.get_by_text("vog", exact=True).first.click()  # the score's range filter in the sidebar
    page.mouse.move(700, 500)
    hardest = ds.sort_by("vog", reverse=True).first()
    # the first tile opens in the sample modal, whose sidebar shows its filepath
    page.locator("[data-cy=fo-grid] canvas, [data-cy=looker]").first.click()
    shown = page.locator(f'[data-cy="sidebar-entry-filepath"][title="{hardest.filepath}"]')
    shown.wait_for()
    page.keyboard.press("Escape")
    try:
        shown.wait_for(state="detached", timeout=10000)
    except PlaywrightTimeout:  # the key went to the sample viewer: click beside the modal, as a user does
        page.mouse.click(12, 450)
        shown.wait_for(state="detached")
    _settle(page)
    _shot(page, "app-grid.png")


def _input(modal, label):
    """The text box of the form's field labelled ``label``."""
    field = modal.get_by_text(label, exact=True).locator("xpath=ancestor::*[.//input[not(@aria-hidden)]][1]")
    return field.locator("input:not([aria-hidden])").first


def _close_toasts(page):
    for button in page.locator("[role=alert] button").all():
        try:
            button.click(timeout=5000)
        except Exception:  # gone by itself
            pass


def _execute(page, shot=None):
    """Click Execute once the server has checked the form (a screenshot of it first)."""
    execute = page.get_by_role("button", name="Execute")
    expect(execute).to_be_enabled(timeout=TIMEOUT)  # the locator, re-resolved: the form re-renders it
    if shot:
        _shot(page, shot)
    execute.click()


def test_saved_view_from_the_selector(app, page):
    """Save VoG views from the operator browser, then open one from the saved-view selector,
    in the same page (no reload)."""
    ds, url, session = app
    modal = _operator(page, "Save VoG views", "save_vog_views")
    modal.get_by_text("Percentile", exact=True).wait_for()
    _execute(page, shot="app-save-views.png")
    page.get_by_text("VoG views saved", exact=True).wait_for(
        timeout=TIMEOUT
    )  # the result (the form says "... views saved (never ...")
    ds.reload()
    assert {"vog-high", "vog-low"} <= set(ds.list_saved_views())
    _close_dialogs(page)
    # "Open afterwards" (vog-high): the operator reloads the dataset, then sets the view by its
    # stages (a set_view by name would be looked up in the App's stale list of saved views and
    # fail with a red toast). Close any toasts; the selector is what this step walks.
    _close_toasts(page)
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    selector = page.locator("[data-cy=saved-views-selection]")
    option = page.locator("[data-cy=saved-views-selection-view]").get_by_text("vog-low", exact=True)
    selector.click()
    try:
        option.wait_for(timeout=15000)
        SEEN["selector"] = True
    except PlaywrightTimeout:
        # FiftyOne 1.22 lists the saved views it loaded with the dataset: the selector shows only
        # "Unsaved view" until the page is reloaded (issue 11, part 8). The user's way today:
        # reload the page, then pick the view from the selector.
        SEEN["selector"] = False
        page.keyboard.press("Escape")
        page.reload()
        page.get_by_text("40 samples").wait_for()
        selector.click()
    option.click()
    page.get_by_text("4 samples").wait_for()  # the bottom 10% of 40
    page.wait_for_url("**view=vog-low*")
    _settle(page)
    _shot(page, "app-saved-view.png")


def test_new_saved_view_was_listed_without_a_reload():
    """Save VoG views reloads the dataset in the App (issue 11, part 8), so the selector lists the
    views it just saved without a page reload."""
    assert SEEN.get("selector") is True


def test_vog_panel(app, page):
    """The VoG panel on the saved view's dataset; a click on the tallest error-rate bar loads
    that decile's samples."""
    ds, url, session = app
    assert "vog" in ds.get_field_schema(), "needs the compute test's run"
    # back to the whole dataset: the selector's clear button (x)
    page.locator("[data-cy=saved-views-btn-selection-clear]").click()
    page.get_by_text("40 samples").wait_for()
    page.get_by_title("New panel").or_(page.locator("[data-cy=new-panel-btn]")).first.click()
    page.get_by_text("VoG", exact=True).click()
    page.get_by_text("samples scored in this view").wait_for()
    page.locator(".js-plotly-plot").nth(1).locator(".barlayer path").first.wait_for(state="attached")
    assert page.get_by_text("error rate by vog decile").count() >= 1
    # which score to trust, said in the panel (issue 18): the same one line as the report's summary
    verdict = page.get_by_text("Which score:").first
    verdict.wait_for()
    assert (
        "for label errors open " in verdict.inner_text() and "for out-of-distribution open " in verdict.inner_text()
    ), verdict.inner_text()
    _shot(page, "app-panel.png")
    # the tallest bar of the error-rate chart (the second plot), clicked where a user clicks
    boxes = (
        page.locator(".js-plotly-plot")
        .nth(1)
        .locator(".barlayer path")
        .evaluate_all(
            "ps => ps.map(p => { const r = p.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })"
        )
    )
    x, y, w, h = max(boxes, key=lambda b: b[3])
    assert h > 0, boxes
    page.mouse.click(x + w / 2, y + h / 2)
    page.get_by_role("button", name="Back to the full view").wait_for()
    shown = page.get_by_text("Showing ").first
    shown.wait_for()
    assert re.search(r"Showing 4 samples with", shown.inner_text()), shown.inner_text()  # a decile of 40
    page.mouse.move(5, 880)  # no tooltip over the chart
    _settle(page)
    _shot(page, "app-panel-slice.png")
    page.get_by_role("button", name="Back to the full view").click()
    page.get_by_role("button", name="Back to the full view").wait_for(state="detached")


def _files(root, skip=("mongo", "db", "screenshots", "plugins")):
    out = set()
    for d, dirs, files in os.walk(root):
        if d == root:
            dirs[:] = [x for x in dirs if x not in skip]
        out.update(os.path.join(d, f) for f in files)
    return out


def test_export_from_the_app(app, page, tmp_root):
    """Export VoG subset of a saved view into a new folder inside the App roots: the files are on
    disk, and no file was deleted (the dataset's media, a file beside the export)."""
    ds, url, session = app
    parent = os.path.join(tmp_root, "app-exports")
    os.makedirs(parent, exist_ok=True)
    with open(os.path.join(parent, "notes.txt"), "w") as f:
        f.write("not ours")
    export_dir = os.path.join(parent, "hard")
    before = _files(tmp_root)
    modal = _operator(page, "Export VoG subset", "export_vog_subset")
    modal.get_by_text("Export directory", exact=True).wait_for()
    _select(page, modal, "Saved view", "vog-high")
    _input(modal, "Export directory").fill(export_dir)
    _execute(page, shot="app-export.png")
    page.get_by_text("Export complete").wait_for()
    _close_dialogs(page)
    after = _files(tmp_root)
    assert not before - after, sorted(before - after)  # nothing deleted
    added = after - before
    assert added and all(p.startswith(export_dir + os.sep) for p in added), sorted(added)
    images = sorted(p for p in added if p.endswith(".png"))
    high = ds.load_saved_view("vog-high")
    assert len(images) == len(high) == 4
    labels = dict(zip(high.values("filepath"), high.values("ground_truth.label")))
    assert sorted(os.path.basename(os.path.dirname(p)) for p in images) == sorted(labels.values())
    assert os.path.exists(os.path.join(export_dir, ".fiftyone-vog-export.json"))


def test_manage_the_run_from_the_app(app, page):
    """Day two (docs/app.md): see the run's options and what it owns, rename it (its fields
    follow), then delete it after the confirmation that lists what goes (issue 18)."""
    ds, url, session = app
    page.keyboard.press("Escape")
    _close_toasts(page)
    # 1. Get VoG run info: the run's fields, indexes and configuration
    modal = _operator(page, "Get VoG run info", "get_vog_run_info")
    modal.get_by_text("What it owns", exact=True).wait_for(timeout=TIMEOUT)
    modal.get_by_text("Configuration", exact=True).wait_for()
    assert modal.get_by_text("vog_raw", exact=False).count() >= 1
    _shot(page, "app-run-info.png")
    page.get_by_role("button", name="Cancel").click()
    modal.wait_for(state="detached")

    # 2. Rename VoG run: the new names are previewed, then the fields follow
    modal = _operator(page, "Rename VoG run", "rename_vog_run")
    modal.get_by_text("New name", exact=True).wait_for(timeout=TIMEOUT)
    _input(modal, "New name").fill("vog_first")
    modal.get_by_text("vog_raw → vog_first_raw", exact=False).wait_for(timeout=TIMEOUT)
    _execute(page, shot="app-run-rename.png")
    page.get_by_text("VoG run renamed to 'vog_first'").wait_for(timeout=TIMEOUT)
    _close_dialogs(page)
    ds.reload()
    assert "vog_first" in ds.list_runs() and "vog" not in ds.list_runs()
    schema = ds.get_field_schema()
    assert {"vog_first", "vog_first_raw"} <= set(schema) and "vog" not in schema

    # 3. Delete VoG run: the form lists what goes; nothing runs until the box is ticked
    modal = _operator(page, "Delete VoG run", "delete_vog_run")
    modal.get_by_text("VoG run", exact=True).wait_for(timeout=TIMEOUT)
    _select(page, modal, "VoG run", "vog_first")
    modal.get_by_text("You are about to delete VoG run 'vog_first' and").wait_for(timeout=TIMEOUT)
    assert modal.get_by_text("vog_first_raw", exact=False).count() >= 1
    page.wait_for_timeout(1500)  # the form's validation (the App's debounce)
    expect(page.get_by_role("button", name="Execute")).to_be_disabled()
    modal.get_by_text("Delete what is listed", exact=True).click()
    _execute(page, shot="app-run-delete.png")
    page.get_by_text("VoG run 'vog_first' deleted").wait_for(timeout=TIMEOUT)
    _close_dialogs(page)
    ds.reload()
    assert not [r for r in ds.list_runs() if r.startswith("vog")]
    assert not [f for f in ds.get_field_schema() if f.startswith("vog")]
    assert "ground_truth" in ds.get_field_schema()  # the user's fields stay
