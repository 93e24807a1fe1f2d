"""The explorers in a real browser: JupyterLab on 127.0.0.1 (a free port, a token) driven by headless
Chromium through Selenium. For notebooks 04 and 07 (copies in a temporary folder, so nothing is
saved into the repository): run all cells, check that no cell raised and that no widget failed to
display ("Error displaying widget"), move a slider with the keyboard and check that the picture
changed. JupyterLab, its kernels and the browser are stopped in every case.

Needs Debian's chromium and chromium-driver (`apt-get install chromium chromium-driver`; `.ci/run`
installs them) and selenium (the dev extras); skips with that reason where they are missing.
DDFM_EDU_SCREENSHOTS=folder saves a screenshot of each explorer at 1366 x 768 there.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
INSTALL = "install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"

pytestmark = pytest.mark.slow

# (notebook, the slider to move, the key that moves it) for each explorer checked
SLIDERS = {
    "04_em_fusion.ipynb": [("iteration", "ARROW_LEFT")],
    "07_ddfm_sampling.ipynb": [("step", "ARROW_LEFT"), ("steps", "ARROW_LEFT")],
}

# JavaScript run in the page (JupyterLab started with expose_app_in_browser)
NOTEBOOK = "const nb = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
KERNEL_IDLE = NOTEBOOK + """
const kernel = nb && nb.sessionContext && nb.sessionContext.session && nb.sessionContext.session.kernel;
return !!(nb && nb.content && kernel && kernel.status === 'idle');"""
RUN_STATE = NOTEBOOK + """
const errors = [], pending = [];
nb.content.widgets.forEach((cell, n) => {
  if (cell.model.type !== 'code') return;
  if (cell.model.executionCount === null) pending.push(n);
  for (const output of cell.model.outputs.toJSON())
    if (output.output_type === 'error') errors.push(`cell ${n}: ${output.ename}: ${output.evalue}`);
});
return {errors: errors, pending: pending, idle: nb.sessionContext.session.kernel.status === 'idle'};"""
PICTURE = """
const img = arguments[0];
if (!img.complete || img.naturalWidth === 0) return null;  // a new picture still loading
const canvas = document.createElement('canvas');
canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
canvas.getContext('2d').drawImage(img, 0, 0);
return canvas.toDataURL('image/png');"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, check, timeout: float, every: float = 0.5):
    """check() until it returns something true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def lab():
    """(url, token, driver): JupyterLab serving copies of the notebooks, and a headless Chromium."""
    reason = f"selenium is missing: pip install selenium (the dev extras); {INSTALL}"
    webdriver = pytest.importorskip("selenium.webdriver", reason=reason)
    if not (os.access(CHROMIUM, os.X_OK) and os.access(DRIVER, os.X_OK)):
        pytest.skip(f"Chromium or its driver not found ({CHROMIUM}, {DRIVER}): {INSTALL}")
    folder = Path(tempfile.mkdtemp(prefix="ddfm-edu-browser-"))
    for name in SLIDERS:
        shutil.copy(REPO / "notebooks" / name, folder / name)
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernel as a student has it
    env.update(
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        JUPYTER_CONFIG_DIR=str(folder / ".config"), JUPYTER_RUNTIME_DIR=str(folder / ".runtime"),
        JUPYTERLAB_WORKSPACES_DIR=str(folder / ".workspaces"),
        JUPYTERLAB_SETTINGS_DIR=str(folder / ".settings"),
    )  # fmt: skip
    server = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
            f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={folder}", "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=open(folder / "lab.log", "wb"),
        start_new_session=True,
    )  # fmt: skip
    driver = None
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited: {(folder / 'lab.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as answer:
                    return answer.status == 200
            except OSError:
                return False

        _wait("JupyterLab to answer", up, timeout=90)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in (
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--window-size=1366,768", f"--user-data-dir={folder / '.chromium'}",
        ):  # fmt: skip
            options.add_argument(argument)
        from selenium.webdriver.chrome.service import Service

        driver = webdriver.Chrome(options=options, service=Service(executable_path=DRIVER))
        driver.set_page_load_timeout(60)
        driver.set_script_timeout(30)
        yield url, token, driver
    finally:
        try:
            if driver is not None:
                driver.quit()  # the browser and its driver
        finally:
            # the server shuts its kernels down on SIGTERM; a kernel also exits when its parent dies
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
                try:
                    server.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(server.pid, signal.SIGKILL)
                    server.wait(timeout=20)
            shutil.rmtree(folder, ignore_errors=True)


def _explorer(driver, description: str):
    """(slider handle, image) of the explorer holding the slider with this description."""
    from selenium.webdriver.common.by import By

    slider = f"//div[contains(@class, 'widget-slider')][.//label[normalize-space() = '{description}']]"
    handle = driver.find_element(By.XPATH, slider + "//div[contains(@class, 'noUi-handle')]")
    box = driver.find_element(By.XPATH, slider + "/ancestor::div[contains(@class, 'widget-vbox')][1]")
    return handle, box.find_element(By.CSS_SELECTOR, "img.widget-image")


@pytest.mark.parametrize("notebook", list(SLIDERS))
def test_notebook_runs_and_its_explorers_answer_in_the_browser(lab, notebook):
    from selenium.webdriver.common.keys import Keys

    url, token, driver = lab
    driver.get(f"{url}/lab/tree/{notebook}?token={token}&reset")
    _wait(f"{notebook} to open with an idle kernel", lambda: driver.execute_script(KERNEL_IDLE), timeout=120)
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")

    def finished():
        state = driver.execute_script(RUN_STATE)
        assert not state["errors"], f"{notebook}: a cell raised: {state['errors']}"
        return state["idle"] and not state["pending"]

    time.sleep(2)  # let the kernel go busy
    _wait(f"{notebook} to run all cells", finished, timeout=420, every=2)
    assert "Error displaying widget" not in driver.find_element("tag name", "body").text
    shots = os.environ.get("DDFM_EDU_SCREENSHOTS")
    for description, key in SLIDERS[notebook]:
        handle, image = _explorer(driver, description)
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", image)
        before = driver.execute_script(PICTURE, image)
        handle.send_keys(getattr(Keys, key))
        _wait(
            f"the picture of the '{description}' explorer to change",
            lambda image=image, before=before: driver.execute_script(PICTURE, image) not in (None, before),
            timeout=60,
        )
        if shots:
            driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", handle)
            Path(shots, f"{notebook[:2]}_{description}.png").write_bytes(
                base64.b64decode(driver.get_screenshot_as_base64())
            )
    state = driver.execute_script(RUN_STATE)
    assert not state["errors"], f"{notebook}: a callback raised: {state['errors']}"
    assert "Error displaying widget" not in driver.find_element("tag name", "body").text
