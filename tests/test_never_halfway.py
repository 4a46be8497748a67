"""Figures, `plot` and `compare` leave out what does not apply, name it, and finish; a manifest lists
what was made; `compare` notes parity ranks beyond full rank as the main query does.

By hand (Llama 3 70B: 80 layers, d 8,192, 8 KV heads of 128; Qwen3-Next computes q, k, v and z in one
map, in_proj_qkvz, so `--targets qv` cannot adapt its q and v alone):
- KV cache at 100,000 tokens: 2 · 80 · 8 · 128 · 2 bytes · 100,000 = 32,768,000,000 bytes.
- LoRA on k_proj, v_proj (8,192 → 1,024 each): 80 · 2 · (8,192 + 1,024) = 1,474,560 parameters per rank,
  2,949,120 bytes: parity rank ⌈32,768,000,000 / 2,949,120⌉ = ⌈11,111.1⌉ = 11,112 > full rank 1,024.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from matplotlib.text import Text

from estimator import estimate, load_spec
from estimator.errors import EstimatorError

from .test_cli import run

PARITY_KV_RANK = -(-(2 * 80 * 8 * 128 * 2 * 100_000) // (80 * 2 * (8_192 + 1_024) * 2))  # 11,112


def test_architectures_figure_draws_every_cache_whatever_the_targets() -> None:
    """The figure draws the fixed models' caches (no target changes them) and the query's own LoRA: targets
    that Qwen3-Next, Nemotron-H or Mamba lack leave their cache curves in, as they are with all-linear."""
    from estimator.plots.kinds import cache_by_architecture, kinds_estimates

    est = estimate(load_spec("llama3-70b"), 100_000, 32, "qv", methods=("kv", "lora"))
    drawn, skipped = kinds_estimates(est)
    assert skipped == []
    names = ["llama3.1-8b", "qwen3-next-80b-a3b", "nemotron-h-56b", "mamba-2.8b", "llama3-70b"]
    assert [e.spec.name for e, _ in drawn] == names
    qwen = drawn[1][0]
    assert qwen.kv_state_bytes == 36 * (8_192 * 3 * 2 + 524_288 * 2)  # 39,518,208: as under any targets
    fig = cache_by_architecture(est)
    (lora,) = [ln for ln in fig.axes[0].get_lines() if str(ln.get_label()).startswith("LoRA")]
    assert lora.get_label() == "LoRA r=32 of Llama 3 70B"
    assert lora.get_ydata()[0] == 32 * 80 * ((8_192 + 8_192) + (8_192 + 1_024)) * 2  # q and v at T = 1
    assert "Left out" not in " ".join(t.get_text() for t in fig.findobj(Text))


def test_figures_write_everything_and_a_manifest(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _out, err = run(capsys, "figures", "--model", "llama3-70b", "--targets", "qv", "--out", str(tmp_path),
                         "--format", "svg")  # fmt: skip
    assert code == 0, err
    from estimator.plots import FIGURES

    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted([*(f"{name}.svg" for name in FIGURES), "manifest.json"])  # all 8, not 6
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert sorted(manifest["files"]) == sorted(f"{name}.svg" for name in FIGURES) and "skipped" not in manifest


def test_a_figure_that_does_not_apply_is_skipped_not_fatal(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from estimator import plots

    def refuse(est: object) -> None:
        raise EstimatorError("Toy splits over none of 1, 2, 4, 8 GPUs; give --tp to serve-memory")

    monkeypatch.setitem(plots.FIGURES, "memory_vs_context", refuse)
    code, _out, err = run(capsys, "figures", "--model", "gpt2", "--out", str(tmp_path), "--format", "svg")
    assert code == 0, err
    assert "skipped memory_vs_context: Toy splits over none" in err
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["skipped"] == {
        "memory_vs_context": "Toy splits over none of 1, 2, 4, 8 GPUs; give --tp to serve-memory"
    }
    assert len(manifest["files"]) == len(plots.FIGURES) - 1 and not (tmp_path / "memory_vs_context.svg").exists()


def test_plot_architectures_with_targets_a_fixed_model_lacks(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "kinds.svg"
    code, _out, err = run(capsys, "plot", "architectures", "--model", "llama3-70b", "--targets", "qv", "-o", str(path))
    assert code == 0, err
    assert "Qwen3-Next-80B-A3B: DeltaNet hybrid" in " ".join(path.read_text().split())


def test_compare_leaves_out_a_model_the_targets_miss(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "compare", "--model", "llama3-70b,mamba-2.8b", "--targets", "k_proj,v_proj",
                         "--tokens", "100k")  # fmt: skip
    assert code == 0, err
    assert "Left out (the query does not apply): mamba-2.8b: unknown target 'k_proj' for Mamba 2.8B" in out
    row = next(line for line in out.splitlines() if line.startswith("llama3-70b"))
    assert f"{PARITY_KV_RANK:,}*" in row
    assert (
        "* llama3-70b: parity rank 11,112 is beyond the full rank of k_proj, v_proj (1,024), where a LoRA stops "
        "adding expressiveness." in out
    )
    code, out, err = run(capsys, "compare", "--model", "llama3-70b,mamba-2.8b", "--targets", "k_proj,v_proj",
                         "--tokens", "100k", "--json")  # fmt: skip
    assert code == 0
    (llama,) = json.loads(out)  # JSON stays one document; the note goes to stderr
    assert llama["parity_rank"] == PARITY_KV_RANK and llama["parity_beyond_full_rank"]
    assert llama["smallest_full_rank"] == 1_024 and "mamba-2.8b" in err


def test_compare_still_refuses_what_no_model_takes(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "compare", "--model", "mamba-2.8b", "--targets", "q_proj")
    assert code == 2 and err.startswith("error: the query applies to none of the models: unknown target 'q_proj'")
    code, _out, err = run(capsys, "compare", "--model", "nonesuch,llama3-8b")
    assert code == 2 and err.startswith("error: unknown model 'nonesuch'")


@pytest.mark.parametrize(
    "args",
    [
        ["figures", "--loreft-rank", "4"],
        ["plot", "tokens", "--methods", "dora"],
        ["sweep", "--virtual-tokens", "5"],
        ["--ia3-targets", "q", "sweep"],
    ],
)
def test_figure_commands_refuse_options_they_would_ignore(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    """The figures and sweeps draw the cache, LoRA and pretraining rows only: DoRA's, IA3's, LoReFT's and the
    virtual tokens' options would change nothing, so they are refused rather than silently dropped."""
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1
