"""`estimate serve` (#17): the JSON API gives the CLI's numbers, bad input is HTTP 400 with the CLI's line, the
server survives malformed requests; and the page, loaded in a real headless chromium, updates as inputs move."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient

from estimator.cli import main
from estimator.web.app import create_app
from estimator.zoo import model_names

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
DEEP = json.loads("[" * 40 + "]" * 40)  # a posted config nested 41 deep


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(), base_url="http://127.0.0.1:8000")


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def cli_table(capsys: pytest.CaptureFixture[str], *args: str) -> list[list[str]]:
    """The rows of the table ``estimate`` prints, each line split into its words."""
    assert main(list(args)) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("stored as"))
    end = lines.index("", start)
    return [line.split() for line in lines[start + 1 : end]]


def cli_refusal(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The one line the CLI refuses with, without its ``error: `` prefix."""
    assert main(list(args)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err.removeprefix("error: ")


@pytest.mark.parametrize("model", model_names())
def test_the_api_gives_the_cli_numbers_for_every_zoo_model(
    client: TestClient, capsys: pytest.CaptureFixture[str], model: str
) -> None:
    served = client.get("/api/estimate", params={"model": model, "tokens": "1M", "rank": "16"}).json()
    printed = cli_json(capsys, "--model", model, "--tokens", "1M", "--rank", "16")
    for row in served["methods"]:
        row.pop("label")
    served.pop("summary")
    cells = served.pop("table")
    assert served == printed
    assert [" ".join(row["cells"]).split() for row in cells] == cli_table(
        capsys, "--model", model, "--tokens", "1M", "--rank", "16"
    )  # the page's cells are the CLI's: its rounding, the SI size, "—" where it gives none


def test_the_models_api_is_the_cli_models_json_and_its_ratios_the_cli_ones(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    served = client.get("/api/models", params={"tokens": "1M", "rank": "512"}).json()
    assert main(["models", "--tokens", "1M", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    ratios = {r["name"]: (r.pop("kv_to_lora_bytes_ratio"), r.pop("cells")) for r in served}
    assert served == printed
    windowed = beyond = 0
    for name, (ratio, cells) in ratios.items():
        args = ("--model", name, "--tokens", "1M", "--rank", "512", "--methods", "kv,lora")
        if main(list(args)) == 2:  # the CLI refuses the rank: no ratio
            capsys.readouterr()
            assert ratio is None and cells[3] == "—", name
            beyond += 1
            continue
        capsys.readouterr()
        rows = cli_table(capsys, *args)
        kv, lora = rows[0], rows[-1]
        if lora[-1] == "—":  # a cache that keeps only a window: the CLI gives no ratio
            windowed += 1
        assert (cells[3], cells[2]) == (lora[-1], kv[-2]), name
        if lora[-1] != "—":
            assert ratio == pytest.approx(cli_json(capsys, *args)["kv_to_lora_bytes_ratio"]), name
        else:
            assert ratio is None, name
    assert windowed and beyond  # both kinds of "—" are met


REFUSALS = [
    {"model": "llama3.1-8b", "rank": "5000", "targets": "qv"},
    {"model": "llama3.1-8b", "rank": "5000", "targets": "q_proj,v_proj"},
    {"model": "gpt2", "targets": "qv"},
    {"model": "phi3-mini", "targets": "q,v"},
    {"model": "llama3.1-8b", "targets": "nothing_here"},
    {"model": "llama3-70b", "tokens": "1e400"},
    {"model": "llama3-70b", "tokens": "0"},
    {"model": "llama3-70b", "tokens": "7.05"},
    {"model": "llama3-70b", "rank": "0"},
    {"model": "llama3-70b", "kv_dtype": "fp7"},
    {"model": "llama3-70b", "methods": "kv,nope"},
    {"model": "llama3-70b", "experts": "some"},
    {"model": "llama3-70b", "window_cache": "w-2"},
    {"model": "llama3-7b"},
]


@pytest.mark.parametrize("params", REFUSALS, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_every_refusal_of_the_cli_is_the_api_s_in_its_words(
    client: TestClient, capsys: pytest.CaptureFixture[str], params: dict[str, str]
) -> None:
    args = [item for key, value in params.items() for item in (f"--{key.replace('_', '-')}", value)]
    line = cli_refusal(capsys, *args)
    response = client.get("/api/estimate", params=params)
    assert (response.status_code, response.json()) == (400, {"error": line})


def test_the_api_takes_the_cli_options_and_a_pasted_config(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    params = {"model": "qwen2.5-7b", "tokens": "32k", "kv-dtype": "int4", "targets": "qv", "methods": "kv,lora"}
    served = client.get("/api/estimate", params=params).json()
    assert served["methods"][1]["label"] == "LoRA r=32, qv (bf16)"
    printed = cli_json(capsys, "--model", "qwen2.5-7b", "--tokens", "32k", "--kv-dtype", "int4", "--targets", "qv",
                       "--methods", "kv,lora")  # fmt: skip
    assert served["kv_cache"] == printed["kv_cache"]
    config = json.loads((ROOT / "tests" / "data" / "hf_configs" / "llama3-8b.json").read_text())
    posted = client.post("/api/estimate", json={"config": config, "tokens": "100k"}).json()
    assert posted["kv_cache"]["bytes"] == 32 * 2 * 8 * 128 * 2 * 100_000  # Llama 3 8B by hand
    sweep = client.get("/api/sweep", params={"model": "llama3-70b", "tokens": "1k,100k", "ranks": "8,32"}).json()
    assert [(r["tokens"], r["rank"]) for r in sweep["rows"]] == [(1000, 8), (100000, 8), (1000, 32), (100000, 32)]
    assert sweep["rows"][3]["kv_to_lora_bytes_ratio"] == pytest.approx(39.55696202531645)
    models = client.get("/api/models", params={"tokens": "100k", "rank": "32"}).json()
    llama = next(m for m in models if m["name"] == "llama3-70b")
    assert llama["kv_bytes_per_token"] == 327_680 and llama["kv_to_lora_bytes_ratio"] == pytest.approx(39.5569620253)
    csv = client.get("/api/estimate", params={"model": "gpt2", "format": "csv"}).text
    assert csv.splitlines()[0].startswith("mechanism,method,params,bytes")


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "needle"),
    [
        ("get", "/api/estimate", {"params": {"tokens": "abc"}}, "cannot read token count 'abc'"),
        ("get", "/api/estimate", {"params": {"config": "/etc/passwd"}}, "unknown parameter 'config'"),
        ("get", "/api/estimate", {"params": {"model": "llama3-7b"}}, "did you mean llama3-70b"),
        ("get", "/api/estimate", {"params": {"rank": "x"}}, "rank 'x' is not a whole number"),
        ("post", "/api/estimate", {"content": b"{not json"}, "the request body is not JSON"),
        ("post", "/api/estimate", {"json": {"config": {"model_type": "llama"}}}, "'hidden_size'"),
        ("post", "/api/estimate", {"json": {"config": "x" * 10}}, "must be a config.json object"),
        ("post", "/api/estimate", {"json": {"config": {"model_type": "llama", "x": DEEP}}}, "nests"),
        ("get", "/api/sweep", {"params": {"tokens": "1:1T:lin1000000"}}, "points"),
        ("get", "/api/models", {"params": {"bogus": "1"}}, "unknown parameter 'bogus'"),
    ],
)
def test_bad_input_is_http_400_with_the_cli_line(
    client: TestClient, method: str, path: str, kwargs: dict[str, Any], needle: str
) -> None:
    if "content" in kwargs:
        kwargs["headers"] = {"content-type": "application/json"}
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert needle in error and "\n" not in error and "Traceback" not in error


def test_the_server_survives_a_thousand_malformed_requests(client: TestClient) -> None:
    rng = random.Random(1)
    junk = ["", "-1", "1e400", "nan", "x" * 5000, "100k", "{", "\u0000", "../../etc/passwd", "1:2:3", "ümlaut"]
    keys = ["tokens", "rank", "model", "kv_dtype", "targets", "methods", "experts", "ranks", "format", "zzz"]
    statuses = set()
    for i in range(1000):
        params = {rng.choice(keys): rng.choice(junk) for _ in range(rng.randint(1, 4))}
        path = rng.choice(["/api/estimate", "/api/sweep", "/api/models"])
        if i % 3 == 0:
            response = client.post(
                path,
                content=rng.choice([b"[]", b"{", b'{"config": 5}', b"null", b'{"tokens": []}']),
                headers={"content-type": "application/json"},
            )
        else:
            response = client.get(path, params=params)
        statuses.add(response.status_code)
        assert response.status_code in (200, 400, 405), (path, params, response.text[:200])
        assert "error" in response.json() or response.status_code == 200
    assert client.get("/api/estimate").status_code == 200  # still serving
    assert 400 in statuses


def test_the_page_fetches_nothing_from_elsewhere() -> None:
    static = ROOT / "estimator" / "web" / "static"
    for path in [static / "index.html", *static.glob("*.js")]:
        text = path.read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text


def test_the_options_are_the_cli_s_names_defaults_help_and_choices(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    import typer

    from estimator.cli.app import app

    command = typer.main.get_command(app)
    params = {p.name: p for p in command.params}  # type: ignore[attr-defined]
    served = client.get("/api/options").json()
    names = [o["name"] for o in served["options"]]
    assert names == [n for n in params if n in names] and "config" not in names and "name" not in names
    assert set(names) == {
        n for n in params if n not in ("config", "name", "output", "as_json", "as_csv", "markdown", "version")
    }
    for option in served["options"]:
        declared = params[option["name"]]
        assert option["help"] == declared.help and (option["default"] == declared.default or option["name"] == "model")
        for value in option["choices"] or ():  # each value the page offers, the CLI takes
            flag = f"--{option['name'].replace('_', '-')}"
            rows = ["--methods", "kv,lora"] if option["name"] != "methods" else []
            assert main(["--model", "llama3-8b", flag, value, *rows, "--json"]) == 0, (flag, value)
            capsys.readouterr()
        if option["choices"]:  # and what it refuses, it refuses listing exactly those
            line = client.get("/api/estimate", params={option["name"]: "zz"}).json()["error"]
            assert all(c in line or c == "auto" for c in option["choices"]), line  # the CLI's line omits auto
    assert client.get("/api/options", params={"x": "1"}).status_code == 400


@pytest.mark.parametrize(
    "params",
    [
        {"model": "gpt2", "tokens": "1k,100k", "ranks": "8,32"},
        {"model": "mistral-7b-v0.1", "tokens": "1k:1M:log4", "ranks": "1:64:x4", "kv-dtype": "int4"},
        {"model": "qwen3-next-80b-a3b", "tokens": "1k,1M", "ranks": "16", "targets": "attention"},
        {"model": "llama3-70b", "tokens": "100k", "ranks": "8,2048", "targets": "q_proj,v_proj"},
    ],
)
def test_the_sweep_rows_are_the_cli_rows(
    client: TestClient, capsys: pytest.CaptureFixture[str], params: dict[str, str]
) -> None:
    """/api/sweep gives the rows `estimate sweep --json` prints for the same options, to the last digit."""
    args = [item for key, value in params.items() for item in (f"--{key}", value)]
    printed = cli_json(capsys, "sweep", *args)
    served = client.get("/api/sweep", params=params)
    assert served.status_code == 200, served.text
    assert served.json()["rows"] == printed["rows"]


@pytest.mark.parametrize(
    "params",
    [
        {"model": "gpt2", "tokens": "1k", "ranks": "0"},
        {"model": "gpt2", "tokens": "0", "ranks": "8"},
        {"model": "gpt2", "tokens": "1k", "ranks": "8", "kv-dtype": "int3"},
        {"model": "gpt2", "tokens": "1k", "ranks": "8", "targets": "qv"},
        {"model": "llama3-7b", "tokens": "1k", "ranks": "8"},
    ],
)
def test_a_sweep_refusal_is_the_cli_line(
    client: TestClient, capsys: pytest.CaptureFixture[str], params: dict[str, str]
) -> None:
    args = [item for key, value in params.items() for item in (f"--{key}", value)]
    assert main(["sweep", *args, "--json"]) == 2
    line = capsys.readouterr().err.strip().removeprefix("error: ")
    served = client.get("/api/sweep", params=params)
    assert served.status_code == 400 and served.json()["error"] == line
