"""Hostile input: every class a hostile user found gets one line with its fix and exit status 2, or an
exact number; never a traceback, a hang, a wrapped integer or an ignored input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from estimator import EstimatorError, Query, estimate
from estimator.capacity import fill_tokens
from estimator.hf_config import spec_from_hf_config
from estimator.zoo import load_spec

from .conftest import CONFIGS
from .test_cli import run

ROOT = Path(__file__).resolve().parent.parent


def _config(tmp_path: Path, source: str, **changes: Any) -> str:
    config = json.loads((CONFIGS / f"{source}.json").read_text())
    target = config["text_config"] if "text_config" in config and "text_config" not in changes else config
    target.update(changes)
    path = tmp_path / f"{source}-changed.json"
    path.write_text(json.dumps(config))
    return str(path)


def _one_line(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "", (args, code, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and "; " in err, err
    return err


# --- silent wrong numbers ------------------------------------------------------------------------------


def test_a_sweep_past_2_to_the_63_stays_exact(capsys: pytest.CaptureFixture[str]) -> None:
    """`sweep --tokens 30T --ranks 8 --csv` printed kv_cache_bytes=-9223372036854775808 (int64 overflow)."""
    code, out, _ = run(capsys, "sweep", "--tokens", "30T", "--ranks", "8", "--csv")
    assert code == 0
    header, row = out.splitlines()[:2]
    values = dict(zip(header.split(","), row.split(","), strict=True))
    assert int(values["kv_cache_bytes"]) == 30 * 10**12 * 327_680 == 9_830_400_000_000_000_000  # > 2^63
    assert int(values["parity_rank"]) == -(-(30 * 10**12 * 327_680 * 8) // (12_943_360 * 16))


def test_ranks_beyond_the_documented_bound_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """`sweep --ranks 100B` gave LoRA bytes 282,828,990,786,306,048 instead of 2,588,672,000,000,000,000."""
    assert "rank '100B' is more than 1,000,000,000" in _one_line(capsys, "sweep", "--tokens", "100k", "--ranks", "100B")
    code, out, _ = run(capsys, "sweep", "--tokens", "100k", "--ranks", "1e9", "--csv")
    assert code == 0
    header, row = out.splitlines()[:2]
    values = dict(zip(header.split(","), row.split(","), strict=True))
    assert int(values["lora_bytes"]) == 10**9 * 12_943_360 * 2  # exact at the bound


def test_top_k_above_the_experts_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A config with num_experts_per_tok above the experts gave more active than total parameters."""
    path = _config(tmp_path, "mixtral-8x7b", num_experts_per_tok=9)
    assert "num_experts_per_tok (9) is more than the 8 routed experts" in _one_line(capsys, "--config", path)


@pytest.mark.parametrize(
    ("source", "changes", "needle"),
    [
        ("llama3-8b", {"num_hidden_layers": True}, "'num_hidden_layers' is True"),  # was read as one layer
        ("gemma2-9b", {"num_hidden_layers": "42"}, "'num_hidden_layers' is '42'"),  # crashed gemma2
        ("qwen2.5-7b", {"num_hidden_layers": 28.0}, "'num_hidden_layers' is 28.0"),  # crashed qwen2
        ("qwen1.5-moe-a2.7b", {"num_hidden_layers": "24"}, "'num_hidden_layers' is '24'"),
        ("mixtral-8x7b", {"num_hidden_layers": 32.0}, "'num_hidden_layers' is 32.0"),
        ("gemma3-1b", {"sliding_window_pattern": 0}, "'sliding_window_pattern' is 0"),  # was a ZeroDivisionError
        ("qwen3-30b-a3b", {"decoder_sparse_step": 0}, "'decoder_sparse_step' is 0"),
        ("gemma2-9b", {"num_hidden_layers": 10**12}, "from 1 to 100,000"),  # was a MemoryError
        ("llama3-8b", {"model_type": ["llama"]}, "model_type is ['llama'], not a string"),
        ("llama3-8b", {"tie_word_embeddings": "false"}, "'tie_word_embeddings' is 'false', not true or false"),
        ("gemma3-27b", {"text_config": None}, "keeps its language model in text_config, which is missing"),
    ],
)
def test_readers_check_every_field_before_computing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str, changes: dict[str, Any], needle: str
) -> None:
    assert needle in _one_line(capsys, "--config", _config(tmp_path, source, **changes))


def test_deeply_nested_and_oversized_json_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 5000 + "]" * 5000)  # was a RecursionError
    assert "nests objects or arrays more than 32 deep" in _one_line(capsys, "--config", str(deep))
    big = tmp_path / "big.json"
    big.write_text('{"model_type": "llama", "x": "' + "a" * 2_000_000 + '"}')
    assert "is over 1,000,000 bytes" in _one_line(capsys, "--config", str(big))
    assert "holds no config.json; pass a model folder" in _one_line(capsys, "--config", str(tmp_path))


def test_capacity_rates_must_be_finite_and_in_range(capsys: pytest.CaptureFixture[str]) -> None:
    """`capacity --text-nats-per-token inf` printed `inf bits`; `--bits-per-param nan` crashed."""
    assert "must be a number from 0.001 to 1,000" in _one_line(capsys, "capacity", "--text-nats-per-token", "inf")
    assert "must be a number from 0.001 to 64" in _one_line(capsys, "capacity", "--bits-per-param", "nan")
    assert "must be a number from 0.001 to 1,000" in _one_line(capsys, "capacity", "--text-bits-per-token", "1e-320")


def test_fill_tokens_are_exact() -> None:
    """⌊c · P / h⌋ was computed in floats: 0.7 · 3 // 0.7 gave 2."""
    assert 0.7 * 3 // 0.7 == 2.0  # the float answer
    assert fill_tokens(3, 0.7, 0.7) == 3 == int(Fraction(0.7) * 3 / Fraction(0.7))
    assert fill_tokens(414_187_520, 2.0, 1.69 / 0.6931471805599453) == 339_754_925


def test_model_takes_zoo_names_only(capsys: pytest.CaptureFixture[str]) -> None:
    """`--model ../../../some/dir/evil` loaded a TOML from outside the zoo."""
    for name in ("../model_specs/gpt2", "../../../tmp/evil", "gpt2.toml", "_validated"):
        assert "unknown model" in _one_line(capsys, "--model", name)


# --- tracebacks ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--tokens", "1e400"], "is more than 1,000,000,000,000,000,000"),  # was an OverflowError
        (["--tokens", "1e1000000"], "is more than"),  # was decimal.Overflow
        (["--tokens", "1e999999"], "is more than"),  # took 22 s, then an OverflowError
        (["--pretraining-tokens", "1e400"], "is more than"),  # was a ZeroDivisionError
        (["--experts", "none", "--targets", "mlp", "--model", "mixtral-8x7b"], "has nothing mlp can adapt"),
        (["--experts", "none", "--targets", "mlp", "--model", "qwen3-30b-a3b"], "has nothing mlp can adapt"),
        (["--methods", "all,lora"], "mixes all with single methods"),  # said "unknown method 'all'; use all"
    ],
)
def test_options_that_crashed_are_one_line(capsys: pytest.CaptureFixture[str], args: list[str], needle: str) -> None:
    if "--model" not in args:
        args = ["--model", "llama3-70b", *args]
    assert needle in _one_line(capsys, *args)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["capacity", "--bits-per-param", "nan"], "from 0.001 to 64"),
        (["validate", "-m", "gpt2", "--rank", "1000000", "--allow-beyond-full-rank"], "give --rank 21,620 or less"),
        (["sweep", "--ranks", "1:10M:lin10000000", "--csv"], "use at most 1,000,000"),  # ran out of memory
        (["sweep", "--tokens", "1k:1M:lin1000", "--ranks", "1:5000:lin5000"], "more than 1,000,000"),  # product
        (["plot", "tokens", "--ranks", "1:100000:lin100000"], "too many curves"),  # hung
    ],
)
def test_limits_on_work_are_on_the_total_and_checked_first(
    capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    assert needle in _one_line(capsys, *args)


def _estimate(*args: str, **popen: Any) -> subprocess.CompletedProcess[bytes]:
    code = "import sys; from estimator.cli import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, check=False, **popen)


def test_any_locale_prints() -> None:
    """A Latin-1 or ASCII locale raised UnicodeEncodeError on "—"."""
    for encoding in ("latin-1", "ascii"):
        done = _estimate("--model", "gpt2", env={**os.environ, "PYTHONIOENCODING": encoding})
        assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr
        assert b"GPT" in done.stdout


def test_closed_and_broken_pipes_exit_quietly() -> None:
    """A closed stdout raised AttributeError; `estimate constants | head -1` exited 1."""
    code = "import sys; from estimator.cli import main; sys.exit(main())"
    closed = subprocess.run(
        [sys.executable, "-c", code, "--model", "gpt2"],
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.close(1),
        check=False,
    )
    assert closed.returncode == 0 and closed.stderr == b"", closed.stderr
    for args in (("constants",), ("--model", "llama3-70b"), ("sweep", "--tokens", "1:1M:lin2000", "--csv")):
        head = subprocess.run(
            f"{sys.executable} -c '{code}' {' '.join(args)} | head -1; exit ${{PIPESTATUS[0]}}",
            shell=True,
            executable="/bin/bash",
            capture_output=True,
            check=False,
        )
        assert head.returncode == 0 and b"Traceback" not in head.stderr, (args, head.stderr)


# --- the Python API ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"tokens": float("nan")}, "token count must be a whole number"),  # returned NaN bytes
        ({"tokens": 1.5}, "token count must be a whole number"),  # gave fractional results
        ({"rank": 1.5}, "rank must be a whole number"),
        ({"pretraining_tokens": 0}, "pretraining token count 0 must be at least 1"),  # ZeroDivisionError
        ({"tokens": 10**19}, "must be at most"),
    ],
)
def test_the_python_api_raises_the_projects_error(changes: dict[str, Any], needle: str) -> None:
    spec = load_spec("llama3-70b")
    with pytest.raises(EstimatorError, match=needle):
        Query(spec, **changes)
    with pytest.raises(EstimatorError, match=needle):
        estimate(spec, **changes)


def test_names_given_as_strings_are_read() -> None:
    """methods=("lora", "kv") as strings dropped the KV row; kv_dtype="int4" raised AttributeError."""
    est = estimate(load_spec("llama3-70b"), 100_000, methods=("lora", "kv"), kv_dtype="int4")
    assert [r.method.value for r in est.rows] == ["kv", "lora"] and est.kv_bytes_per_token == 92_160


def test_a_reader_never_sees_an_unchecked_field() -> None:
    """Every key a family reader looks up is in the schema it is checked against first: the shared one,
    or the module's own families' ``fields``."""
    import importlib
    import re

    from estimator.families.schema import FIELDS

    unchecked = {}
    for path in (ROOT / "estimator" / "families").glob("*.py"):
        text = path.read_text()
        used = set(re.findall(r'r\.(?:need|get|field)\(\s*"([a-z_]+)"', text))
        used |= set(re.findall(r'r\.config(?:\.get\(|\[)"([a-z_]+)"', text))
        used |= set(re.findall(r'r\.need\("[a-z_]+", "([a-z_]+)"\)', text))
        module = importlib.import_module(f"estimator.families.{path.stem}")
        own = {key for family in getattr(module, "FAMILIES", ()) for key in family.fields}
        if missing := used - set(FIELDS) - own:
            unchecked[path.stem] = missing
    assert unchecked == {}
    assert spec_from_hf_config(CONFIGS / "llama3-8b.json").num_hidden_layers == 32
