"""Invariants over random queries (hypothesis): the cache never shrinks as tokens grow, the numpy sweep
equals the single query everywhere in range, crossover and parity are the smallest such values."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from estimator.compare import crossover_tokens, evaluate
from estimator.kv import kv_bits_per_token, kv_cache_bytes, kv_max_cache_bytes, kv_state_bits, windowed
from estimator.layout import KVFormat, MlaCache, WindowCache
from estimator.query import Query
from estimator.stores.targets import lora_bytes
from estimator.sweep import sweep
from estimator.units import MAX_COUNT, MAX_RANK, DType, format_tokens_short, parse_tokens
from estimator.zoo import load_all_specs

SPECS = load_all_specs()
PROPERTY = settings(  # the same 300 examples on every run (a red CI is never luck), and no example database
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True, database=None
)

specs = st.sampled_from(SPECS)
tokens = st.one_of(st.integers(1, 10**6), st.integers(1, MAX_COUNT))
ranks = st.one_of(st.integers(1, 4096), st.integers(1, MAX_RANK))
formats = st.builds(
    KVFormat,
    st.sampled_from(list(DType)),
    st.sampled_from([None, 32, 64, 128]),
    st.booleans(),
    st.sampled_from(list(MlaCache)),
    st.sampled_from(list(WindowCache)),
)


@PROPERTY
@given(specs, tokens, formats)
def test_the_cache_grows_linearly_until_a_window_fills(spec, n, fmt) -> None:  # type: ignore[no-untyped-def]
    bits = kv_bits_per_token(spec, fmt)
    size = kv_cache_bytes(spec, n, fmt)
    assert kv_cache_bytes(spec, n + 1, fmt) >= size  # never shrinks
    if not windowed(spec):
        assert size == -(-(n * bits + kv_state_bits(spec, fmt)) // 8)  # ⌈(T · b + S) / 8⌉: exact at any T
    else:
        ceiling = kv_max_cache_bytes(spec, fmt)
        assert ceiling is None or size <= ceiling


@PROPERTY
@given(specs, st.lists(tokens, min_size=1, max_size=4), st.lists(ranks, min_size=1, max_size=3), formats)
def test_the_sweep_equals_the_single_query_at_every_point(spec, token_list, rank_list, fmt) -> None:  # type: ignore[no-untyped-def]
    base = evaluate(Query(spec, 1, 1, kv=fmt, methods=("kv", "lora"), allow_beyond_full_rank=True))
    grid = sweep(base, sorted(set(token_list)), sorted(set(rank_list)))
    columns = grid.columns()
    for i, (t, r) in enumerate(zip(columns["tokens"].tolist(), columns["rank"].tolist(), strict=True)):
        single = evaluate(Query(spec, t, r, kv=fmt, methods=("kv", "lora"), allow_beyond_full_rank=True))
        assert columns["kv_cache_bytes"][i] == single.kv_cache_bytes
        assert columns["lora_bytes"][i] == single.lora_bytes
        assert columns["tokens_held"][i] == single.tokens_held
        assert columns["holds_all_tokens"][i] == single.holds_all_tokens
        assert columns["beyond_context_window"][i] == single.beyond_context_window
        if single.holds_all_tokens:
            assert columns["parity_rank"][i] == single.parity_rank
            assert columns["kv_to_lora_bytes_ratio"][i] == single.kv_cache_bytes / single.lora_bytes
        else:  # a cache that keeps only the last w tokens: no rate, ratio or parity rank of the text
            assert columns["parity_rank"][i] is columns["kv_to_lora_bytes_ratio"][i] is None
    singles = {
        r: evaluate(Query(spec, 1, r, kv=fmt, methods=("kv", "lora"), allow_beyond_full_rank=True)).crossover_tokens
        for r in grid.ranks.tolist()
    }
    assert grid.crossover_tokens() == [singles[r] for r in grid.ranks.tolist()]


@PROPERTY
@given(specs, tokens, ranks, formats)
def test_crossover_and_parity_are_the_smallest_such_values(spec, n, rank, fmt) -> None:  # type: ignore[no-untyped-def]
    est = evaluate(Query(spec, n, rank, kv=fmt, methods=("kv", "lora"), allow_beyond_full_rank=True))
    adapter = est.lora_bytes
    cross = crossover_tokens(spec, adapter, fmt)
    if cross is None:  # the fixed state (the cache at T = 0) already holds the adapter, or windows cap it below
        ceiling = kv_max_cache_bytes(spec, fmt)
        assert kv_cache_bytes(spec, 0, fmt) >= adapter or (ceiling is not None and ceiling < adapter)
    else:
        assert kv_cache_bytes(spec, cross, fmt) >= adapter
        assert cross == 1 or kv_cache_bytes(spec, cross - 1, fmt) < adapter
    parity = est.parity_rank
    assert lora_bytes(est.targets, parity, est.adapter_dtype) >= est.kv_cache_bytes
    assert parity == 1 or lora_bytes(est.targets, parity - 1, est.adapter_dtype) < est.kv_cache_bytes


@PROPERTY
@given(tokens)
def test_token_counts_read_back_exactly(n) -> None:  # type: ignore[no-untyped-def]
    assert parse_tokens(str(n)) == n
    assert parse_tokens(f"{n:_}") == n
    short = format_tokens_short(n)
    assert parse_tokens(short.replace(",", "")) == n
