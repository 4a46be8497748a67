"""The page of `estimate serve` as a person uses it (#24), in a real headless chromium: sliders dragged and clicked,
arrow keys, typing, a config pasted and dropped, at 1280×800 and on a phone. After each move the state, the fields,
the table (the CLI's printed cells), the charts' data and the URL agree; the URL gives the same view on reload."""

from __future__ import annotations

import json
import math
import random
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from urllib.request import urlopen

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from estimator.cli import main
from estimator.web.app import create_app

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CONFIGS = ROOT / "tests" / "data" / "hf_configs"
BROWSER, DRIVER = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
SIZES = [(1280, 800), (390, 844)]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    running.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if BROWSER is None or DRIVER is None:
        pytest.skip("no chromium and chromedriver on this machine (CI installs Debian's: apt-get install chromium "
                    "chromium-driver)")  # fmt: skip
    pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    ARTIFACTS.mkdir(exist_ok=True)
    yield driver
    driver.quit()


def viewport(driver: Any, width: int, height: int) -> None:
    """The page's viewport, exactly (a phone's: touch-sized, no window chrome)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )


def settled(driver: Any, previous: str | None = None, timeout: float = 20) -> str:
    """Wait until the page has rendered an update newer than ``previous``; return its number."""
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d: Any) -> str | bool:
        value = d.execute_script("return document.body.dataset.ready || ''")
        return value if value and value != previous else False

    return str(WebDriverWait(driver, timeout).until(ready))


def cli_text(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def cli_rows(capsys: pytest.CaptureFixture[str], *args: str) -> list[list[str]]:
    code, out, err = cli_text(capsys, *args)
    assert code == 0, err
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("stored as"))
    return [line.split() for line in lines[start + 1 : lines.index("", start)]]


VIEW = """
const field = (id) => document.getElementById(id).value;
return {state: {...state}, defaults: {...DEFAULTS}, pasted: config !== null,
  fields: {model: field('model'), tokens: field('tokens'), rank: field('rank'), targets: field('targets'),
           kv_dtype: field('kv_dtype'), tokens_slider: field('tokens-slider'), rank_slider: field('rank-slider')},
  rows: [...document.querySelectorAll('#table tbody tr')].map(tr => [...tr.cells].map(td => td.textContent)),
  charts: charts.map(c => ({labels: c.series.map(s => s.label), x: c.data[0], y: c.data.slice(1),
                            marks: c.marks.map(m => [m.label, m.x])})),
  error: document.getElementById('error').hidden ? '' : document.getElementById('error').textContent,
  stale: document.getElementById('output').classList.contains('stale')};
"""


def view(driver: Any) -> dict[str, Any]:
    return dict(driver.execute_script(VIEW))


def cli_args(seen: dict[str, Any], config: Path | None = None) -> list[str]:
    """The command line of the page's query: every option the page holds away from its default."""
    state, defaults = seen["state"], seen["defaults"]
    args = ["--config", str(config)] if config else ["--model", state["model"]]
    for key, value in state.items():
        if key == "model" or value == defaults[key]:
            continue
        option = "--" + key.replace("_", "-")
        args += [option if value == "true" else "--no-" + option[2:]] if value in ("true", "false") else [option, value]
    return args


def agrees(driver: Any, capsys: pytest.CaptureFixture[str], config: Path | None = None) -> dict[str, Any]:
    """State, fields, table, charts and URL tell the same query, and the table is the CLI's for it."""
    seen = view(driver)
    state, fields = seen["state"], seen["fields"]
    assert seen["error"] == "" and not seen["stale"], seen["error"]
    for key in ("tokens", "rank", "targets", "kv_dtype"):
        assert fields[key] == state[key], key
    assert fields["model"] == ("" if config else state["model"])
    query = {k: v[0] for k, v in parse_qs(urlsplit(driver.current_url).query).items()}
    for key in ("tokens", "rank", "targets", "kv_dtype"):
        assert query.get(key, {"tokens": "100k", "rank": "32", "targets": "all-linear", "kv_dtype": "bf16"}[key]) \
            == state[key], key  # fmt: skip
    assert [" ".join(row).split() for row in seen["rows"]] == cli_rows(capsys, *cli_args(seen, config))
    estimate = json.loads(cli_text(capsys, *cli_args(seen, config), "--json")[1])
    tokens, rank = estimate["query"]["tokens"], estimate["query"]["rank"]
    assert float(fields["rank_slider"]) == min(13, round(math.log2(rank)))
    assert abs(10 ** float(fields["tokens_slider"]) / tokens - 1) < 0.012  # the slider sits at T (its step: 1%)
    by_tokens, by_rank = seen["charts"]
    assert f"LoRA r={rank}" in by_tokens["labels"] and "--" not in by_tokens["labels"]
    lora = by_tokens["y"][by_tokens["labels"].index(f"LoRA r={rank}") - 1]
    lora_bytes = next(m for m in estimate["methods"] if m["method"] == "lora")["bytes"]
    assert lora == [pytest.approx(lora_bytes / x) for x in by_tokens["x"]]
    marks = {label.split(" ")[0]: x for label, x in by_tokens["marks"]}  # T, the crossover, the context window
    assert marks["T"] == tokens and marks.get("crossover") == estimate["crossover_tokens"]
    assert marks.get("context") == estimate["model"]["context_window_tokens"]
    if estimate["holds_all_tokens"]:  # the rank chart is drawn at T: its KV line is the table's rate
        assert by_rank["y"][0] == [pytest.approx(estimate["kv_cache"]["bytes_per_token"])] * len(by_rank["x"])
    marks = dict((label.split(" ")[0], x) for label, x in by_rank["marks"])
    assert marks["r"] == rank and marks.get("parity") == estimate.get("parity_rank")
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
    return seen


def refused_fetches_only(driver: Any) -> None:
    """The console since the last look holds nothing but the failed fetches of the refusals the page shows."""
    severe = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe and all("/api/" in m and "status of 400" in m for m in severe), severe


def keys(driver: Any, element: Any, *typed: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    chain = ActionChains(driver).click(element).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL)
    for text in typed:
        chain = chain.send_keys(text)
    chain.perform()


@pytest.mark.parametrize(("width", "height"), SIZES, ids=lambda v: str(v))
def test_every_control_by_hand_keeps_state_table_charts_and_url_together(
    server: str, browser: Any, capsys: pytest.CaptureFixture[str], width: int, height: int
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    viewport(browser, width, height)
    browser.get(server + "?model=llama3-70b")
    version = settled(browser)
    agrees(browser, capsys)
    find = lambda name: browser.find_element("id", name)  # noqa: E731
    tokens_slider, rank_slider = find("tokens-slider"), find("rank-slider")

    def moved(action: Any) -> dict[str, Any]:
        nonlocal version
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", action[0])
        action[1]()
        version = settled(browser, version)
        return agrees(browser, capsys)

    slider_width = tokens_slider.size["width"]
    drag = ActionChains(browser).click_and_hold(tokens_slider).move_by_offset(slider_width // 5, 0).release()
    seen = moved((tokens_slider, drag.perform))  # a pointer drag of the tokens slider
    assert seen["state"]["tokens"] not in ("100k", "5", "7.05") and "." not in seen["state"]["tokens"][:1]
    click = ActionChains(browser).move_to_element_with_offset(rank_slider, -slider_width // 4, 0).click()
    seen = moved((rank_slider, click.perform))  # a click on the rank slider's track
    rank = int(seen["state"]["rank"])
    seen = moved((rank_slider, lambda: rank_slider.send_keys(Keys.ARROW_RIGHT)))  # arrow keys
    assert int(seen["state"]["rank"]) == rank * 2
    seen = moved((tokens_slider, lambda: tokens_slider.send_keys(Keys.ARROW_LEFT)))
    moved((find("tokens"), lambda: keys(browser, find("tokens"), "250k", Keys.TAB)))  # typing in each field
    moved((find("rank"), lambda: keys(browser, find("rank"), "48", Keys.TAB)))
    seen = moved((find("targets"), lambda: keys(browser, find("targets"), "q_proj,v_proj", Keys.TAB)))
    assert seen["rows"][1][0].startswith("LoRA r=48, ")
    moved((find("kv_dtype"), lambda: (find("kv_dtype").click(), find("kv_dtype").send_keys("int8", Keys.ENTER))))
    seen = moved((find("model"), lambda: Select(find("model")).select_by_visible_text("Qwen2.5 7B")))
    assert seen["state"]["model"] == "qwen2.5-7b" and seen["state"]["kv_dtype"] == "int8"

    shared = browser.current_url  # the URL gives the same view in a fresh page
    browser.get("about:blank")
    browser.get(shared)
    settled(browser)
    again = agrees(browser, capsys)
    assert (again["state"], again["rows"], again["charts"]) == (seen["state"], seen["rows"], seen["charts"])
    browser.save_screenshot(str(ARTIFACTS / f"page-{width}x{height}.png"))


def test_a_refusal_is_the_cli_line_next_to_its_field_and_the_table_greys(
    server: str, browser: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from selenium.webdriver.common.keys import Keys

    viewport(browser, 1280, 800)
    browser.get(server + "?model=llama3.1-8b&targets=qv")
    version = settled(browser)
    before = view(browser)["rows"]
    keys(browser, browser.find_element("id", "rank"), "5000", Keys.TAB)
    version = settled(browser, version)
    code, _, err = cli_text(capsys, "--model", "llama3.1-8b", "--targets", "qv", "--rank", "5000")
    seen = view(browser)
    assert code == 2 and seen["error"] == err.strip().removeprefix("error: ")
    assert seen["stale"] and seen["rows"] == before  # the old table stays, greyed
    beside = browser.execute_script("return document.getElementById('error').previousElementSibling.textContent")
    assert beside.startswith("LoRA rank") and browser.find_element("id", "rank").get_attribute("aria-invalid") == "true"
    refused_fetches_only(browser)


@pytest.mark.parametrize("width", [390, 360])
def test_no_control_is_beyond_a_phone_s_right_edge(server: str, browser: Any, width: int) -> None:
    viewport(browser, width, 800)
    browser.get(server)
    settled(browser)
    browser.find_element("css selector", "#paste summary").click()
    browser.find_element("css selector", "#more summary").click()
    for folded in browser.find_elements("css selector", "#more-methods summary"):
        folded.click()
    outside = browser.execute_script(
        "return [...document.querySelectorAll('input, select, button, textarea, summary, a, canvas, h2, p')]"
        ".filter(e => e.getClientRects().length && e.getBoundingClientRect().right > innerWidth + 0.5)"
        ".map(e => e.id || e.tagName)"
    )
    assert outside == []
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width
    scroller = browser.execute_script(
        "return [...document.querySelectorAll('.scroll')].map(s => getComputedStyle(s).overflowX)"
    )
    assert set(scroller) == {"auto"}
    unlabelled = browser.execute_script(
        "return [...document.querySelectorAll('input, select, textarea')].filter(e => !e.labels.length"
        " && !e.getAttribute('aria-label')).map(e => e.id)"
    )  # every control is named for a screen reader
    assert unlabelled == []


def drop_file(driver: Any, element: Any, path: Path) -> None:
    """A file dragged from the desktop and dropped on ``element``, through the browser's input pipeline."""
    box = driver.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.x + r.width / 2, r.y + 12]",
                                element)  # fmt: skip
    data = {"items": [], "files": [str(path)], "dragOperationsMask": 1}
    for kind in ("dragEnter", "dragOver", "drop"):
        driver.execute_cdp_cmd("Input.dispatchDragEvent", {"type": kind, "x": box[0], "y": box[1], "data": data})


def test_a_pasted_or_dropped_config_is_the_query_and_travels_in_the_link(
    server: str, browser: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    viewport(browser, 1280, 800)
    browser.get(server + "?model=llama3-70b&tokens=1M")
    version = settled(browser)
    allowed = ["clipboardReadWrite", "clipboardSanitizedWrite"]  # the clipboard a person copies the file into
    browser.execute_cdp_cmd("Browser.grantPermissions", {"permissions": allowed, "origin": server.rstrip("/")})
    pasted = CONFIGS / "llama2-7b.json"
    browser.execute_async_script("navigator.clipboard.writeText(arguments[0]).then(arguments[1])", pasted.read_text())
    browser.find_element("css selector", "#paste summary").click()
    box = browser.find_element("id", "config")
    ActionChains(browser).click(box).key_down(Keys.CONTROL).send_keys("v").key_up(Keys.CONTROL).perform()
    assert json.loads(box.get_attribute("value")) == json.loads(pasted.read_text())  # pasted, by Ctrl+V
    browser.find_element("id", "use-config").click()
    version = settled(browser, version)
    seen = agrees(browser, capsys, pasted)
    assert Select(browser.find_element("id", "model")).first_selected_option.text == "pasted config.json"
    link = urlsplit(browser.current_url)
    assert "model" not in parse_qs(link.query) and link.fragment.startswith("config=")
    assert browser.find_element("id", "share").get_attribute("href") == browser.current_url
    browser.get("about:blank")
    browser.get(link.geturl())  # the link alone gives the same view, its config from the fragment
    version = settled(browser)
    again = agrees(browser, capsys, pasted)
    assert (again["rows"], again["charts"]) == (seen["rows"], seen["charts"])

    keys(browser, browser.find_element("id", "config"), "{not json")  # a bad paste: the old table marked stale
    browser.find_element("id", "use-config").click()
    bad = view(browser)
    assert bad["stale"] and bad["rows"] == seen["rows"] and bad["error"].startswith("the pasted text is not JSON")
    keys(browser, browser.find_element("id", "config"), '{"model_type": "llama"}')
    browser.find_element("id", "use-config").click()
    version = settled(browser, version)
    refused = view(browser)
    assert refused["stale"] and refused["rows"] == seen["rows"] and "'hidden_size'" in refused["error"]
    refused_fetches_only(browser)

    dropped = CONFIGS / "mistral-7b-v0.1.json"
    drop_file(browser, browser.find_element("id", "paste"), dropped)
    version = settled(browser, version)
    agrees(browser, capsys, dropped)
    noise = dict(json.loads(dropped.read_text()), notes=random.Random(1).randbytes(20_000).hex())  # too big a link
    browser.execute_async_script("navigator.clipboard.writeText(arguments[0]).then(arguments[1])", json.dumps(noise))
    box = browser.find_element("id", "config")  # a fresh page since the link was loaded
    ActionChains(browser).click(box).key_down(Keys.CONTROL).send_keys("a", "v").key_up(Keys.CONTROL).perform()
    browser.find_element("id", "use-config").click()
    version = settled(browser, version)
    agrees(browser, capsys, dropped)  # the same counts: the note is no field a reader uses
    note = browser.find_element("id", "share-note").text
    assert note.startswith("the pasted config is not in the link") and urlsplit(browser.current_url).fragment == ""
    Select(browser.find_element("id", "model")).select_by_visible_text("Llama 3 8B")  # back to the zoo
    version = settled(browser, version)
    assert agrees(browser, capsys)["state"]["model"] == "llama3-8b" and urlsplit(browser.current_url).fragment == ""


def test_the_controls_are_the_options_the_server_declares(
    server: str, browser: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    viewport(browser, 1280, 800)
    browser.get(server)
    version = settled(browser)
    declared = json.loads(browser.execute_script("return JSON.stringify(OPTIONS)"))
    assert declared == json.loads(urlopen(server + "api/options").read())["options"]
    browser.find_element("css selector", "#more summary").click()  # the options beyond the common ones
    for option in declared:
        if option["choices"] and option["name"] != "methods":
            select = Select(browser.find_element("id", option["name"]))
            assert [o.text for o in select.options] == option["choices"]
            assert select.first_selected_option.text == str(option["default"])
    boxes = browser.find_elements("css selector", "#methods input")
    assert [b.get_attribute("value") for b in boxes] == next(o for o in declared if o["name"] == "methods")["choices"]
    script = "".join(p.read_text() for p in (ROOT / "estimator" / "web" / "static").glob("*.js"))
    assert not any(f'"{c}"' in script for c in ("bf16", "per-expert", "latent", "lora", "100k"))  # none written twice
    typed = browser.find_element("id", "virtual_tokens")
    keys(browser, typed, "40", Keys.TAB)
    version = settled(browser, version)
    seen = agrees(browser, capsys)
    assert any(row[0] == "prefix tuning (40 virtual tokens)" for row in seen["rows"])
    assert "virtual_tokens=40" in browser.current_url
    browser.find_element("id", "kv_zero_point").click()  # a flag, off
    settled(browser, version)
    assert agrees(browser, capsys)["state"]["kv_zero_point"] == "false" and "kv_zero_point=false" in browser.current_url
