"""The query validates itself: names are read, bad values raise the project's error in one line."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from estimator import EstimatorError, Query, estimate, evaluate, load_spec
from estimator.layout import ExpertLayout, KVFormat
from estimator.present.records import estimate_record
from estimator.query.vocabulary import LoReFT, Method
from estimator.units import DType


@pytest.fixture(scope="module")
def llama():  # type: ignore[no-untyped-def]
    return load_spec("llama3-70b")


def test_names_are_read_into_their_types(llama) -> None:  # type: ignore[no-untyped-def]
    q = Query(llama, kv="int4", adapter_dtype="fp32", methods=("lora", "kv"), experts="fused")  # type: ignore[arg-type]
    assert q.kv == KVFormat(DType.int4) and q.adapter_dtype is DType.fp32 and q.experts is ExpertLayout.fused
    assert q.methods == (Method.kv, Method.lora)  # the cache first, always
    est = evaluate(q)
    assert [row.method for row in est.rows] == [Method.kv, Method.lora]
    assert est.kv_bytes_per_token == 92_160  # int4 with groups of 64: 2 · 80 · 8 · (128 · 4 + 64) / 8


def test_estimate_and_evaluate_agree(llama) -> None:  # type: ignore[no-untyped-def]
    """Both faces give Llama 3 70B's numbers by hand: K and V of 8 heads of 128 in 80 layers, bf16, 100,000 tokens;
    r = 32 on q, k, v, o (8,192 -> 8,192, 1,024) and gate, up, down (8,192 <-> 28,672)."""
    lora = 32 * 80 * (2 * (8192 + 8192) + 2 * (8192 + 1024) + 3 * (8192 + 28672))
    for est in (estimate(llama, "100k", 32), evaluate(Query(llama, 100_000, 32))):
        record = estimate_record(est)
        assert record["kv_cache"]["bytes"] == 2 * 80 * 8 * 128 * 2 * 100_000 == 32_768_000_000
        assert record["lora"]["params"] == lora == 414_187_520 and record["lora"]["bytes"] == 2 * lora


def test_the_query_is_frozen(llama) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FrozenInstanceError):
        Query(llama).rank = 8  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"tokens": 0}, "token count 0 must be at least 1"),
        ({"tokens": 1.5}, "token count must be a whole number"),
        ({"tokens": True}, "token count must be a whole number"),
        ({"rank": 0}, "rank 0 must be at least 1"),
        ({"rank": 1.5}, "rank must be a whole number"),
        ({"pretraining_tokens": 0}, "pretraining token count 0 must be at least 1"),
        ({"kv": "int3"}, "unknown KV dtype 'int3'"),
        ({"kv": 4}, "is not a KVFormat or dtype"),
        ({"adapter_dtype": "fp8"}, "bf16, fp16, fp32"),
        ({"weights_dtype": "int4"}, "fp32, bf16, fp16, fp8, int8"),
        ({"methods": ("lora", "bogus")}, "unknown method 'bogus'"),
        ({"methods": ()}, "non-empty"),
        ({"experts": "some"}, "per-expert, fused, none"),
        ({"targets": "foo"}, "unknown target 'foo'"),
        ({"virtual_tokens": 0}, "--virtual-tokens 0 must be at least 1"),
        ({"loreft": LoReFT(rank=0)}, "--loreft-rank 0 must be at least 1"),
        ({"loreft": LoReFT(layers=(99,))}, "layers 0 to 79"),
        ({"loreft": LoReFT(prefix_positions=0, suffix_positions=0)}, "select none"),
    ],
)
def test_bad_arguments_raise_one_line(llama, changes: dict[str, object], needle: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EstimatorError, match=needle) as info:
        Query(llama, **changes)  # type: ignore[arg-type]
    assert "\n" not in str(info.value) and ";" in str(info.value)


def test_the_model_must_be_a_spec() -> None:
    with pytest.raises(EstimatorError, match="ModelSpec"):
        Query("llama3-70b")  # type: ignore[arg-type]


def test_every_face_refuses_a_rank_beyond_full_rank_in_the_same_words(llama) -> None:  # type: ignore[no-untyped-def]
    """Llama 3 70B, all-linear: k_proj and v_proj map 8,192 -> 8 KV heads · 128 = 1,024, the narrowest
    targeted dimension (q, o 8,192 -> 8,192; gate, up, down 8,192 <-> 28,672), so rank 1,025 is beyond full
    rank and 1,024 is not. The rule lives in the query: the API, the CLI and the web API give one line."""
    testclient = pytest.importorskip("starlette.testclient")
    from estimator.cli.main import main
    from estimator.web.app import create_app

    assert not Query(llama, rank=1_024).beyond_full_rank
    with pytest.raises(EstimatorError) as refused:
        Query(llama, rank=1_025)
    line = str(refused.value)
    assert line.startswith("rank 1,025 exceeds the smallest targeted dimension (k_proj, v_proj: 1,024)"), line
    assert Query(llama, rank=1_025, allow_beyond_full_rank=True).beyond_full_rank
    with testclient.TestClient(create_app(), base_url="http://127.0.0.1:8000") as client:
        answer = client.get("/api/estimate", params={"model": "llama3-70b", "rank": "1025"})
        assert answer.status_code == 400 and answer.json()["error"] == line
        allowed = {"model": "llama3-70b", "rank": "1025", "allow_beyond_full_rank": "true"}
        assert client.get("/api/estimate", params=allowed).status_code == 200
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["--model", "llama3-70b", "--rank", "1025"]) == 2
    assert err.getvalue() == f"error: {line}\n"


def test_the_defaults_every_face_shows_are_the_documented_ones() -> None:
    """The README's option table: 100k tokens, rank 32, all-linear, bf16 adapter, weights and cache (groups of
    64 with zero points for an integer cache), per-expert, latent MLA, w, K-1, 20 virtual tokens, LoReFT r=8
    f7+l7 tied, the language model. The options read them off the Query, and the query they build has them."""
    from estimator.query.options import OPTION, build_query

    shown = {name: OPTION[name].default for name in OPTION}
    assert shown["tokens"] == "100k" and shown["rank"] == 32 and shown["targets"] == "all-linear"
    assert (shown["kv_dtype"], shown["kv_group_size"], shown["kv_zero_point"]) == ("bf16", 64, True)
    assert (shown["mla_cache"], shown["window_cache"], shown["conv_cache"], shown["state_dtype"]) == (
        "latent", "w", "K-1", "auto")  # fmt: skip
    assert (shown["loreft_rank"], shown["loreft_positions"], shown["loreft_untied"]) == (8, "f7+l7", False)
    q = build_query({"model": "llama3-70b"})
    assert (q.tokens, q.rank, q.virtual_tokens, q.kv.group_size, q.part) == (100_000, 32, 20, 64, "language")
