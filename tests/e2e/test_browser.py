"""End to end in the real App: headless Chromium opens the operator browser, runs Compute VoG,
sees the field appear, opens the VoG panel. Screenshots go to a temporary folder, or to
$FOV_SCREENSHOTS when set — `FOV_SCREENSHOTS=docs/images make test` refreshes the README's pictures."""

import os
import socket

import pytest

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} missing: run `make browser-deps` (Debian chromium)"),
]
IMAGES = os.environ.get("FOV_SCREENSHOTS") or os.path.join(os.environ["FIFTYONE_DATABASE_DIR"], os.pardir, "screenshots")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage"]
TIMEOUT = 120_000  # ms: the first form resolve imports torch in the App server


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

    from conftest import CLASSES, build_dataset
    from fiftyone_vog.app.install import install_plugin

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
    return page.evaluate("""paths => {
        const top = el => el.getBoundingClientRect().top;
        const headers = [...document.querySelectorAll('[data-cy^="sidebar-group-"][title]')].map(h => [h.title, top(h)]);
        const out = {};
        for (const p of paths) {
            const row = document.querySelector(`[data-cy="sidebar-field-container-${p}"]`);
            const above = row ? headers.filter(([, y]) => y < top(row)).sort((a, b) => b[1] - a[1]) : [];
            out[p] = above.length ? above[0][0] : null;
        }
        return out;
    }""", paths)


def test_compute_vog_from_the_operator_browser(app, page, torchscript_checkpoints):
    ds, url, session = app
    page.goto(url, timeout=TIMEOUT)
    page.get_by_text("40 samples").wait_for()
    _dismiss_popups(page)

    page.keyboard.press("`")  # the operator browser
    search = page.get_by_placeholder("Search operations by name...")
    search.wait_for()
    search.fill("Compute VoG")
    page.get_by_text("compute_vog", exact=True).click()
    page.get_by_text("Checkpoints", exact=True).wait_for()

    try:
        page.locator("[data-cy=operators-prompt-modal] input").first.fill(os.path.join(torchscript_checkpoints, "epoch_*.pt"))
        page.get_by_text("5 checkpoints: epoch_1.pt … epoch_5.pt").wait_for(timeout=20000)  # resolved on the server
    except Exception:
        _shot(page, "debug-fail.png")
        with open(os.path.join(IMAGES, "debug-fail.html"), "w") as f:
            f.write(page.content())
        raise
    _shot(page, "app-form.png")
    page.get_by_role("button", name="Execute").click()

    # the App reloads the dataset when the operator finishes: the VoG fields appear in the sidebar
    page.get_by_text("vog_raw", exact=True).wait_for()
    ds.reload()
    assert ds.count("vog") == 40 and ds.count("vog_raw") == 40
    assert ds.get_run_info("vog").config.model is None  # TorchScript: nothing imported
    assert [(g.name, g.paths) for g in ds.app_config.sidebar_groups if g.name == "VoG"] == [("VoG", ["vog", "vog_raw"])]
    _close_dialogs(page)
    # The App applies the dataset's sidebar groups when it loads the dataset (its reload_dataset keeps the
    # groups on screen and lists new fields under PRIMITIVES); the operator's message asks for a page reload.
    page.reload()
    page.get_by_text("40 samples").wait_for()
    header = page.locator("[data-cy=sidebar-group-VOG]")
    header.wait_for()
    assert header.is_visible()
    groups = _sidebar_group_of(page, ["vog", "vog_raw", "ground_truth", "filepath"])
    assert groups == {"vog": "VOG", "vog_raw": "VOG", "ground_truth": "LABELS", "filepath": "PRIMITIVES"}, groups
    page.get_by_text("vog", exact=True).click()  # the score's range filter in the sidebar
    page.mouse.move(700, 500)
    session.view = ds.sort_by("vog", reverse=True)  # hardest first
    page.wait_for_timeout(3000)
    _shot(page, "app-grid.png")


def test_vog_panel(app, page):
    ds, url, session = app
    assert "vog" in ds.get_field_schema(), "needs the compute test's run"
    page.get_by_title("New panel").or_(page.locator("[data-cy=new-panel-btn]")).first.click()
    page.get_by_text("VoG", exact=True).click()
    page.get_by_text("samples scored in this view").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    page.wait_for_timeout(1000)
    _shot(page, "app-panel.png")
    assert page.get_by_text("error rate by vog decile").count() >= 1
