"""The page's panels for memory to serve, memory to fine-tune and models compared (#24), used by hand in a real
headless chromium at 1280×800 and 390×844: a select changed by keyboard, values typed; each table is the CLI's as
it prints it, its numbers the CLI's ``--json``; a refusal is the CLI's line next to its field; on a phone the tables
scroll in their own box and nothing lies beyond the right edge."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from estimator.cli import main
from tests.test_web_page import SIZES, browser, keys, server, settled, viewport  # noqa: F401  (fixtures)

GiB = 2**30
PANEL = """
const root = document.getElementById(arguments[0] + '-panel');
const error = document.getElementById(arguments[0] + '-error');
return {ready: root.dataset.ready || '', stale: root.classList.contains('stale'),
  error: error.hidden ? '' : error.textContent, beside: error.previousElementSibling.textContent,
  tables: [...root.querySelectorAll('table')].map(t => [...t.rows].map(r => [...r.cells].map(c => c.textContent))),
  wide: document.documentElement.scrollWidth, boxes: [...root.querySelectorAll('.scroll')].map(b =>
    [b.getBoundingClientRect().right, b.scrollWidth > b.clientWidth])};
"""


def panel(driver: Any, name: str) -> dict[str, Any]:
    return dict(driver.execute_script(PANEL, name))


def answered(driver: Any, name: str, previous: str = "") -> dict[str, Any]:
    """The panel once it has shown an answer newer than ``previous``."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 20).until(lambda d: panel(d, name)["ready"] not in ("", previous))
    return panel(driver, name)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[list[list[str]], Any]:
    """(every line the CLI prints, split into words; its --json)."""
    assert main(list(args)) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert main([*args, "--json"]) == 0
    return lines, json.loads(capsys.readouterr().out)


def printed(tables: list[list[list[str]]], lines: list[list[str]]) -> None:
    """Every row of the page's tables is a line the CLI prints (the same cells, the same rounding)."""
    for table in tables:
        for row in table:
            assert " ".join(row).split() in lines, row


def opened(driver: Any, page: str, name: str, size: tuple[int, int]) -> tuple[dict[str, Any], Any]:
    viewport(driver, *size)
    driver.get(page + "?model=llama3-8b")
    settled(driver)
    summary = driver.find_element("css selector", f"#{name}-panel summary")
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", summary)
    summary.click()
    return answered(driver, name), lambda field: driver.find_element("id", f"{name}-{field}")


def change(driver: Any, name: str, before: dict[str, Any], element: Any, *typed: str) -> dict[str, Any]:
    """Type into a field (or pick a select's value by typing its start) with the keyboard; the next answer."""
    from selenium.webdriver.common.keys import Keys

    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    if element.tag_name == "select":
        element.click()
        element.send_keys(*typed, Keys.ENTER)
    else:
        keys(driver, element, *typed, Keys.TAB)
    return answered(driver, name, before["ready"])


def fits_on_a_phone(seen: dict[str, Any], width: int) -> None:
    assert seen["wide"] <= width, seen["wide"]  # the page itself never scrolls sideways
    assert all(right <= width + 1 for right, _ in seen["boxes"])  # each table scrolls inside its own box
    if width < 600:
        assert any(scrolls for _, scrolls in seen["boxes"])


def no_console_errors(driver: Any, refused: int = 0) -> None:
    severe = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert len(severe) == refused and all("status of 400" in m for m in severe), severe


@pytest.mark.parametrize("size", SIZES, ids=lambda v: f"{v[0]}x{v[1]}")
def test_the_serving_panel_by_hand(
    server: str,  # noqa: F811
    browser: Any,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    size: tuple[int, int],
) -> None:
    browser.get_log("browser")
    seen, find = opened(browser, server, "serve", size)
    seen = change(browser, "serve", seen, find("engine"), "sglang")
    seen = change(browser, "serve", seen, find("tp"), "1,2")
    seen = change(browser, "serve", seen, find("batch"), "1,8")
    seen = change(browser, "serve", seen, find("memory_fraction"), "0.8")
    args = ["serve-memory", "--model", "llama3-8b", "--engine", "sglang", "--tp", "1,2", "--batch", "1,8"]
    lines, record = cli(capsys, *args, "--memory-fraction", "0.8")
    pool, verdict = seen["tables"]
    printed(seen["tables"], lines)
    assert pool[0] == ["KV pool per GPU, GiB", "TP 1", "TP 2"] and len(verdict) == 1 + 4
    kv_pool = next(row for row in pool if row[0] == "KV pool")
    assert kv_pool[1:] == [f"{p['kv_pool_bytes'] / GiB:,.2f}" for p in record["pools"]]
    assert [row[6] for row in verdict[1:]] == [f"{r['most_sequences']:,}" for r in record["rows"]]
    assert not seen["stale"] and not seen["error"]
    fits_on_a_phone(seen, size[0])
    shared = browser.current_url  # the link gives the same panel, open, with the same values and tables
    assert "panels=serve" in shared and "serve.engine=sglang" in shared and "serve.tp=1%2C2" in shared
    browser.get("about:blank")
    browser.get(shared)
    again = answered(browser, "serve")
    assert again["tables"] == seen["tables"] and find("tp").get_attribute("value") == "1,2"
    seen = again

    refused = change(browser, "serve", seen, find("tp"), "two")  # a refusal: the CLI's line, beside its field
    assert main(["serve-memory", "--model", "llama3-8b", "--engine", "sglang", "--tp", "two"]) == 2
    line = capsys.readouterr().err.strip().removeprefix("error: ")
    assert refused["error"] == line and refused["stale"] and refused["tables"] == seen["tables"]
    assert refused["beside"].startswith("TP") and find("tp").get_attribute("aria-invalid") == "true"
    no_console_errors(browser, refused=1)


@pytest.mark.parametrize("size", SIZES, ids=lambda v: f"{v[0]}x{v[1]}")
def test_the_fine_tuning_panel_by_hand(
    server: str,  # noqa: F811
    browser: Any,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    size: tuple[int, int],
) -> None:
    browser.get_log("browser")
    seen, find = opened(browser, server, "train", size)
    seen = change(browser, "train", seen, find("optimizer"), "adamw-8")
    seen = change(browser, "train", seen, find("checkpointing"), "layers")
    seen = change(browser, "train", seen, find("zero"), "3")
    seen = change(browser, "train", seen, find("gpus"), "4")
    seen = change(browser, "train", seen, find("tokens"), "16k")
    args = ["--optimizer", "adamw-8bit", "--checkpointing", "layers", "--zero", "3", "--gpus", "4", "--tokens", "16k"]
    lines, record = cli(capsys, "train-memory", "--model", "llama3-8b", *args)
    (table,) = seen["tables"]
    printed(seen["tables"], lines)
    rows = {row[0]: row[1:] for row in table}
    ways = record["ways"]
    assert table[0][1:] == [w["label"] for w in ways]
    assert rows["peak of a step"] == [f"{w['peak_bytes'] / GiB:,.2f}" for w in ways]
    assert rows[f"fits in {record['memory_bytes'] / GiB:,.2f} GiB"] == ["yes" if w["fits"] else "no" for w in ways]
    assert rows["longest sequence (tokens)"] == [f"{w['longest_tokens']:,}" for w in ways]
    assert not seen["stale"] and not seen["error"]
    fits_on_a_phone(seen, size[0])
    no_console_errors(browser)


@pytest.mark.parametrize("size", SIZES, ids=lambda v: f"{v[0]}x{v[1]}")
def test_the_compare_view_by_hand(
    server: str,  # noqa: F811
    browser: Any,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    size: tuple[int, int],
) -> None:
    browser.get_log("browser")
    seen, find = opened(browser, server, "compare", size)
    seen = change(browser, "compare", seen, find("model"), "llama3-8b,gpt2,qwen3-30b-a3b")
    seen = change(browser, "compare", seen, find("tokens"), "32k,1M")
    seen = change(browser, "compare", seen, find("kv_dtype"), "fp8")
    lines, records = cli(capsys, "compare", "--model", "llama3-8b,gpt2,qwen3-30b-a3b", "--tokens", "32k,1M",
                         "--kv-dtype", "fp8")  # fmt: skip
    printed(seen["tables"], lines)
    assert len(seen["tables"]) == 2
    words = browser.execute_script("return [...document.querySelectorAll('#compare-tables p')].map(p => p.textContent)")
    assert words[0].split() in lines and words[0].startswith("At 32,000 tokens")  # each table under its caption
    shown = [row for table in seen["tables"] for row in table[1:]]
    by_tokens = sorted(records, key=lambda r: r["tokens"])  # one table per token count, as the CLI prints them
    assert [(row[0], row[1]) for row in shown] == [(r["model"], f"{r['params']:,}") for r in by_tokens]
    assert not seen["stale"] and not seen["error"]
    fits_on_a_phone(seen, size[0])
    no_console_errors(browser)
