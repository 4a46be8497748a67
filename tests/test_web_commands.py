"""#24: ``/api/serve-memory``, ``/api/train-memory`` and ``/api/compare`` answer what ``estimate serve-memory``,
``train-memory`` and ``compare`` print with ``--json`` for the same options, for every zoo model and several option
sets; every refusal is the CLI's one line with HTTP 400."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient

from estimator.cli import main
from estimator.web.app import create_app
from estimator.zoo import model_names


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(), base_url="http://127.0.0.1:8000")


def cli_args(params: dict[str, str]) -> list[str]:
    """The command line of the API's parameters (a flag is --name or --no-name)."""
    args: list[str] = []
    for key, value in params.items():
        flag = "--" + key.replace("_", "-")
        if value in ("true", "false"):
            args.append(flag if value == "true" else flag.replace("--", "--no-", 1))
        else:
            args += [flag, value]
    return args


def cli(capsys: pytest.CaptureFixture[str], command: str, params: dict[str, str]) -> tuple[int, Any]:
    """(exit status, the --json document or the refusal's line without ``error: ``)."""
    code = main([command, *cli_args(params), "--json"])
    out, err = capsys.readouterr()
    if code == 0:
        return code, json.loads(out)
    assert err.startswith("error: ") and "\n" not in err.strip(), err
    return code, err.strip().removeprefix("error: ")


def agree(client: TestClient, capsys: pytest.CaptureFixture[str], command: str, params: dict[str, str]) -> Any:
    served = client.get(f"/api/{command}", params=params)
    code, printed = cli(capsys, command, params)
    if code == 0:
        assert served.status_code == 200, served.text
        assert served.json() == printed
    else:
        assert code == 2 and served.status_code == 400, served.text
        assert served.json() == {"error": printed}
    return served


SERVING = [
    {},
    {"tp": "1,2,4", "batch": "1,8", "tokens": "32k"},
    {"engine": "sglang", "accelerator": "h200", "weights_dtype": "fp8", "memory_fraction": "0.8"},
    {"engine": "vllm-0.11", "memory": "48GiB", "kv_dtype": "fp8", "max_num_seqs": "64", "block_size": "32"},
    {"engine": "none", "accelerator": "a100-80gb", "max_loras": "4", "max_lora_rank": "64", "overhead": "2GiB"},
]
TRAINING = [
    {},
    {"way": "lora,dora,qlora,full", "optimizer": "adamw-8bit", "checkpointing": "layers", "tokens": "16k"},
    {"way": "full", "gpus": "8", "zero": "3", "precision": "bf16", "loss": "chunked", "loss_chunk": "512"},
    {"way": "qlora", "kbit_prepare": "false", "autocast": "false", "lora_dropout": "0.1", "rank": "64"},
    {"way": "lora", "memory": "24GiB", "micro_batch": "4", "offload": "optimizer", "targets": "qv"},
]
REFUSED = {
    "serve-memory": [
        {"tp": "abc"},
        {"tp": "--config=/etc/passwd"},
        {"memory_fraction": "abc"},
        {"engine": "tgi"},
        {"accelerator": "h900"},
        {"weights_dtype": "fp3"},
        {"memory": "0"},
        {"batch": ","},
        {"block_size": "-3"},
        {"max_loras": "-1"},
        {"model": "no-such-model"},
        {"kv_dtype": "fp5"},
    ],
    "train-memory": [
        {"way": "lorax"},
        {"optimizer": "adam"},
        {"checkpointing": "some"},
        {"loss": "fp16"},
        {"gpus": "0"},
        {"micro_batch": "x"},
        {"precision": "fp8"},
        {"offload": "disk"},
        {"rank": "0"},
        {"targets": "nothing"},
    ],
    "compare": [
        {},
        {"model": "llama3-8b,"},
        {"model": "llama3-8b", "tokens": "lots"},
        {"model": "llama3-8b", "targets": "nothing"},
        {"model": "llama3-8b", "rank": "100000"},
        {"model": "nope"},
    ],
}


@pytest.mark.parametrize("model", model_names())
def test_serve_and_train_memory_are_the_cli_json_for_every_zoo_model(
    client: TestClient, capsys: pytest.CaptureFixture[str], model: str
) -> None:
    agree(client, capsys, "serve-memory", {"model": model, "tp": "1,8", "batch": "1,4"})
    agree(client, capsys, "train-memory", {"model": model, "way": "lora,qlora,full"})


@pytest.mark.parametrize("params", SERVING)
@pytest.mark.parametrize("model", ["llama3-8b", "qwen3-30b-a3b", "gpt-oss-20b"])
def test_serve_memory_option_sets(
    client: TestClient, capsys: pytest.CaptureFixture[str], model: str, params: dict[str, str]
) -> None:
    agree(client, capsys, "serve-memory", {"model": model, **params})


@pytest.mark.parametrize("params", TRAINING)
@pytest.mark.parametrize("model", ["llama3-8b", "qwen3-30b-a3b", "mistral-7b"])
def test_train_memory_option_sets(
    client: TestClient, capsys: pytest.CaptureFixture[str], model: str, params: dict[str, str]
) -> None:
    agree(client, capsys, "train-memory", {"model": model, **params})  # a refusal the CLI's too (MoE: QLoRA's rule)


def test_compare_is_the_cli_json(client: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    everyone = ",".join(model_names())
    assert agree(client, capsys, "compare", {"model": everyone, "tokens": "32k,1M"}).status_code == 200
    params = {"model": "llama3-8b,qwen3-8b", "tokens": "100k", "rank": "8", "kv_dtype": "fp8", "targets": "qv"}
    assert agree(client, capsys, "compare", params).status_code == 200


def test_compare_says_which_models_it_leaves_out(client: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    params = {"model": ",".join(model_names()), "tokens": "32k", "targets": "q_proj,v_proj"}
    served = agree(client, capsys, "compare", params)
    assert main(["compare", *cli_args(params), "--json"]) == 0
    note = capsys.readouterr().err.strip()
    assert note.startswith("Left out") and "gpt2" in note  # GPT-2 has no q_proj
    assert unquote(served.headers["X-Left-Out"]) == note  # the CLI's stderr line, in a header


@pytest.mark.parametrize(("command", "params"), [(c, p) for c, ps in REFUSED.items() for p in ps])
def test_every_refusal_is_the_cli_line(
    client: TestClient, capsys: pytest.CaptureFixture[str], command: str, params: dict[str, str]
) -> None:
    assert agree(client, capsys, command, params).status_code == 400


@pytest.mark.parametrize("command", ["serve-memory", "train-memory", "compare"])
def test_paths_and_output_switches_are_never_taken(client: TestClient, command: str) -> None:
    for key in ("config", "name", "as_json", "json", "csv", "markdown", "bogus"):
        answer = client.get(f"/api/{command}", params={key: "x"})
        assert answer.status_code == 400 and answer.json()["error"].startswith("unknown parameter")
    posted = client.post(f"/api/{command}", json={"config": {"model_type": "llama"}})
    assert posted.status_code == 400 and "not a posted config" in posted.json()["error"]
    flag = client.get(f"/api/{command}", params={"kbit_prepare" if command == "train-memory" else "model": "maybe"})
    assert flag.status_code in (200, 400)


def test_a_post_of_options_is_the_get(client: TestClient) -> None:
    params = {"model": "llama3-8b", "way": "lora", "gpus": 2, "zero": 2, "autocast": False}
    posted = client.post("/api/train-memory", json=params)
    got = client.get("/api/train-memory", params={k: str(v).lower() for k, v in params.items()})
    assert posted.status_code == 200 and posted.json() == got.json()


def printed_rows(capsys: pytest.CaptureFixture[str], args: list[str]) -> list[list[str]]:
    """Every line the CLI prints, split into words (the tables' cells, joined and split the same way)."""
    assert main(args) == 0
    return [line.split() for line in capsys.readouterr().out.splitlines()]


def test_cells_are_the_cli_tables_as_printed(client: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    params = {"model": "qwen3-30b-a3b", "tp": "1,2", "batch": "1,16", "engine": "sglang"}
    served = client.get("/api/serve-memory", params={**params, "cells": "true"}).json()
    tables = served.pop("tables")
    assert served == client.get("/api/serve-memory", params=params).json()  # the rest is the --json
    lines = printed_rows(capsys, ["serve-memory", *cli_args(params)])
    assert tables["headline"].split() == lines[0]
    for row in tables["pool"] + tables["verdict"]:
        assert " ".join(row).split() in lines, row
    params = {"model": "llama3-8b", "way": "lora,full", "zero": "2", "gpus": "4"}
    served = client.get("/api/train-memory", params={**params, "cells": "true"}).json()
    lines = printed_rows(capsys, ["train-memory", *cli_args(params)])
    for row in served.pop("tables")["components"]:
        assert " ".join(row).split() in lines, row
    params = {"model": "llama3-8b,gpt2", "tokens": "32k,1M"}
    served = client.get("/api/compare", params={**params, "cells": "true"}).json()
    assert served["records"] == client.get("/api/compare", params=params).json()
    lines = printed_rows(capsys, ["compare", *cli_args(params)])
    for table in served["tables"]:
        assert table["caption"].split() in lines and " ".join(table["head"]).split() in lines
        assert all(" ".join(row).split() in lines for row in table["rows"])
        assert all(note.split() in lines for note in table["notes"])
    assert client.get("/api/compare", params={"cells": "maybe"}).status_code == 400


def test_the_options_name_each_command_s_parameters_with_values_the_cli_takes(client: TestClient) -> None:
    from estimator.web.commands import command_params

    served = client.get("/api/options").json()["commands"]
    for command, records in served.items():
        assert [r["name"] for r in records] == [p.name for p in command_params(command)]
        for record in records:
            for value in (record["choices"] or [])[:40]:
                params = {"model": "llama3-8b,qwen3-8b" if command == "compare" else "llama3-8b", record["name"]: value}
                answer = client.get(f"/api/{command}", params=params)
                taken = answer.status_code == 200 or not answer.json()["error"].startswith(("unknown", "Invalid"))
                assert taken, (command, record["name"], value, answer.text)  # refused, if at all, for another reason


NEW = ["/api/serve-memory", "/api/train-memory", "/api/compare"]


@pytest.mark.parametrize("path", NEW)
def test_the_new_endpoints_keep_the_server_s_guards(client: TestClient, path: str) -> None:
    """Another site's page is 403, a POST not declared JSON 415, a body over 1 MB 413, a full pool 503."""
    from estimator.web.work import Pool

    assert client.get(path, headers={"origin": "http://evil.example"}).status_code == 403
    assert client.get(path, headers={"sec-fetch-site": "cross-site"}).status_code == 403
    assert client.post(path, content=b"{}", headers={"content-type": "text/plain"}).status_code == 415
    big = b'{"model": "' + b"x" * 1_100_000 + b'"}'
    assert client.post(path, content=big, headers={"content-type": "application/json"}).status_code == 413
    assert client.post(path, content=b"[1]", headers={"content-type": "application/json"}).status_code == 400
    app = create_app()
    full = Pool(workers=1, waiting=0)
    full.in_flight = 1  # the bound reached: the request is turned away before it computes
    app.app.state.queries = full
    busy = TestClient(app, base_url="http://127.0.0.1:8000").get(path, params={"model": "llama3-8b,qwen3-8b"})
    assert busy.status_code == 503 and "busy" in busy.json()["error"]


@pytest.mark.parametrize("path", NEW)
def test_any_json_body_is_200_or_one_short_line(client: TestClient, path: str) -> None:
    import random

    names = ["model", "tokens", "tp", "batch", "engine", "memory", "way", "gpus", "zero", "rank", "cells", "x"]
    values: list[Any] = ["1k", "8", "0", "-1", "1e400", "gpt2", "llama3-8b", "", "true", None, 3, 2.5, [1], {"a": 1}]
    chosen = random.Random(24)
    for _ in range(40):
        body = {chosen.choice(names): chosen.choice(values) for _ in range(chosen.randint(0, 4))}
        answer = client.post(path, json=body)
        assert answer.status_code in (200, 400), (body, answer.text)
        if answer.status_code == 400:
            line = answer.json()["error"]
            assert "\n" not in line and len(line) <= 420, line
