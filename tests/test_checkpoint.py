"""Local checkpoints read from their headers (#16): real safetensors and GGUF files written here, small; the
parameter counts derived by hand from the shapes; bad files one line each."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from estimator.cli import main

# a tiny Llama: V 256, d 64, F 128, 2 layers, 4 heads of 16, 2 KV heads
V, D, F, L, H, K, DH = 256, 64, 128, 2, 4, 2, 16
CONFIG = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "vocab_size": V,
    "hidden_size": D,
    "intermediate_size": F,
    "num_hidden_layers": L,
    "num_attention_heads": H,
    "num_key_value_heads": K,
    "head_dim": DH,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}
LAYER_SHAPES = {
    "self_attn.q_proj.weight": (H * DH, D),
    "self_attn.k_proj.weight": (K * DH, D),
    "self_attn.v_proj.weight": (K * DH, D),
    "self_attn.o_proj.weight": (D, H * DH),
    "mlp.gate_proj.weight": (F, D),
    "mlp.up_proj.weight": (F, D),
    "mlp.down_proj.weight": (D, F),
    "input_layernorm.weight": (D,),
    "post_attention_layernorm.weight": (D,),
}
PARAMS = L * (2 * D * H * DH + 2 * D * K * DH + 3 * D * F + 2 * D) + 2 * V * D + D  # by hand: 106,816


def tensors(layers: int = L, head: bool = True) -> dict[str, np.ndarray]:
    out = {"model.embed_tokens.weight": np.zeros((V, D), np.float16), "model.norm.weight": np.zeros(D, np.float16)}
    for i in range(layers):
        out |= {f"model.layers.{i}.{name}": np.zeros(shape, np.float16) for name, shape in LAYER_SHAPES.items()}
    if head:
        out["lm_head.weight"] = np.zeros((V, D), np.float16)
    return out


def folder(tmp_path: Path, name: str, weights: dict[str, np.ndarray], config: dict | None = None) -> Path:
    from safetensors.numpy import save_file

    where = tmp_path / name
    where.mkdir()
    (where / "config.json").write_text(json.dumps(config or CONFIG))
    save_file(weights, str(where / "model.safetensors"))
    return where


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_model_folder_is_read_from_its_headers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert PARAMS == 106_816
    where = folder(tmp_path, "tiny-llama", tensors())
    code, out, _ = run(capsys, "--config", str(where), "--tokens", "1k")
    assert code == 0
    assert out.startswith(f"tiny-llama (tiny-llama): {PARAMS:,} parameters")
    line = next(x for x in out.splitlines() if x.startswith("Checkpoint:"))
    assert line == (
        f"Checkpoint: {PARAMS:,} parameters in 21 tensors (1 file; F16 {2 * PARAMS / 1000:.2f} kB); the layout "
        f"counts {PARAMS:,}: the same."
    )
    code, out, _ = run(capsys, "inspect", str(where), "--json")
    record = json.loads(out)
    assert record["params_in_headers"] == record["layout_params"] == PARAMS
    assert record["bytes_by_dtype"] == {"F16": 2 * PARAMS}


def test_the_difference_is_explained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = tensors(layers=L + 1)  # one layer past num_hidden_layers, as DeepSeek's MTP layer
    weights["model.vision_tower.proj.weight"] = np.zeros((8, 8), np.float16)
    where = folder(tmp_path, "extra", weights, {**CONFIG, "tie_word_embeddings": True})
    code, out, _ = run(capsys, "inspect", str(where), "--json")
    assert code == 0
    record = json.loads(out)
    layer = sum(int(np.prod(s)) for s in LAYER_SHAPES.values())
    assert record["layout_params"] == PARAMS - V * D  # tied: the head is the embedding
    assert record["explained"] == {
        "layers past num_hidden_layers 2 (e.g. multi-token prediction)": layer,
        "vision or audio tower and projector": 64,
        "the tied output head stored again": V * D,
    }
    assert record["unexplained_params"] == 0
    assert "the tied output head stored again +16,384" in record["line"]


def test_fp8_block_and_gptq_checkpoints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    where = tmp_path / "fp8"
    where.mkdir()
    config = {**CONFIG, "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}}
    (where / "config.json").write_text(json.dumps(config))
    weights = {k: torch.from_numpy(v).to(torch.bfloat16) for k, v in tensors().items()}
    for name in [n for n in weights if n.endswith("proj.weight")]:
        out_dim, in_dim = weights[name].shape
        weights[name] = torch.zeros(out_dim, in_dim, dtype=torch.float8_e4m3fn)
        weights[name.replace(".weight", ".weight_scale_inv")] = torch.zeros(-(-out_dim // 128), -(-in_dim // 128))
    save_file(weights, str(where / "model.safetensors"))
    code, out, _ = run(capsys, "inspect", str(where), "--json")
    record = json.loads(out)
    assert record["params_in_headers"] == PARAMS and record["difference_params"] == 0
    assert record["quantisation_companion_bytes"] == L * 7 * 4  # one fp32 block scale per map: all maps < 128
    assert record["quantisation"] == [
        "fp8 (F8_E4M3) on 14 weights with fp32 scales per 128 × 128 block (weight_scale_inv)"
    ]

    gptq = tmp_path / "gptq"
    gptq.mkdir()
    config = {**CONFIG, "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 32}}
    (gptq / "config.json").write_text(json.dumps(config))
    packed = {k: v for k, v in tensors().items() if not k.endswith("proj.weight")}
    for name, (out_dim, in_dim) in ((n, s) for n, s in LAYER_SHAPES.items() if n.endswith("proj.weight")):
        for i in range(L):
            stem = f"model.layers.{i}.{name.removesuffix('.weight')}"
            packed[f"{stem}.qweight"] = np.zeros((in_dim // 8, out_dim), np.int32)
            packed[f"{stem}.qzeros"] = np.zeros((in_dim // 32, out_dim // 8), np.int32)
            packed[f"{stem}.scales"] = np.zeros((in_dim // 32, out_dim), np.float16)
            packed[f"{stem}.g_idx"] = np.zeros(in_dim, np.int32)
    from safetensors.numpy import save_file as save_numpy

    save_numpy(packed, str(gptq / "model.safetensors"))
    code, out, _ = run(capsys, "inspect", str(gptq))
    assert code == 0
    assert f"Checkpoint: {PARAMS:,} parameters" in out and "stored as GPTQ int4 on 14 weights" in out
    assert "the layout counts 106,816: the same." in out


def test_a_sharded_checkpoint_and_its_missing_shard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors.numpy import save_file

    where = tmp_path / "sharded"
    where.mkdir()
    (where / "config.json").write_text(json.dumps(CONFIG))
    everything = tensors()
    names = sorted(everything)
    halves = {"model-00001-of-00002.safetensors": names[:10], "model-00002-of-00002.safetensors": names[10:]}
    for file, part in halves.items():
        save_file({n: everything[n] for n in part}, str(where / file))
    index = {"weight_map": {n: file for file, part in halves.items() for n in part}}
    (where / "model.safetensors.index.json").write_text(json.dumps(index))
    code, out, _ = run(capsys, "inspect", str(where), "--json")
    assert json.loads(out)["files"] == 2 and json.loads(out)["params_in_headers"] == PARAMS
    (where / "model-00002-of-00002.safetensors").unlink()
    code, out, err = run(capsys, "inspect", str(where))
    assert code == 2 and err.count("\n") == 1
    assert "names model-00002-of-00002.safetensors, which is missing" in err


def test_a_peft_adapter_folder_beside_its_estimate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors.numpy import save_file

    base = folder(tmp_path, "base", tensors())
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    config = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"],
              "base_model_name_or_path": str(base)}  # fmt: skip
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    weights = {}
    for i in range(L):
        for name, out_dim in (("q_proj", H * DH), ("v_proj", K * DH)):
            stem = f"base_model.model.model.layers.{i}.self_attn.{name}"
            weights[f"{stem}.lora_A.weight"] = np.zeros((8, D), np.float32)
            weights[f"{stem}.lora_B.weight"] = np.zeros((out_dim, 8), np.float32)
    save_file(weights, str(adapter / "adapter_model.safetensors"))
    lora = L * 8 * ((D + H * DH) + (D + K * DH))  # r · (d_in + d_out) per map and layer: 3,584
    code, out, _ = run(capsys, "inspect", str(adapter))  # the base it names is not opened unless named
    assert code == 0 and out.splitlines()[1] == (
        f"No estimate: its base {str(base)!r} is only read when named: give --base-config with that path or repo id, "
        "or --base-model with a zoo name."
    )
    code, out, _ = run(capsys, "inspect", str(adapter), "--base-config", str(base))
    assert code == 0
    assert out.splitlines() == [
        f"peft adapter adapter: LORA r=8 on q_proj, v_proj: {lora:,} parameters in 8 tensors (F32 14.34 kB)",
        f"Estimate for LoRA r=8 on q_proj, v_proj of base: {lora:,} parameters: the same as the file.",
    ]
    code, out, err = run(capsys, "--config", str(adapter))
    assert code == 2 and "is a peft adapter folder" in err


def test_a_repo_id_is_read_from_the_local_hub_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-llama"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots"
    snapshot.mkdir()
    folder(snapshot, commit, tensors())
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    code, out, _ = run(capsys, "--config", "someone/tiny-llama", "--tokens", "1k")
    assert code == 0 and out.startswith("someone/tiny-llama (tiny-llama)") and "the layout counts" in out
    code, out, err = run(capsys, "--config", "someone/other-model")
    assert code == 2 and "not in the local Hugging Face cache" in err and "nothing is downloaded" in err


def write_gguf(path: Path, architecture: str = "llama", quantised: bool = True) -> None:
    import gguf

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_name("tiny-gguf")
    writer.add_block_count(L)
    writer.add_embedding_length(D)
    writer.add_feed_forward_length(F)
    writer.add_head_count(H)
    writer.add_head_count_kv(K)
    writer.add_key_length(DH)
    writer.add_value_length(DH)
    writer.add_context_length(2048)
    names = {"attn_q": (H * DH, D), "attn_k": (K * DH, D), "attn_v": (K * DH, D), "attn_output": (D, H * DH),
             "ffn_gate": (F, D), "ffn_up": (F, D), "ffn_down": (D, F)}  # fmt: skip
    writer.add_tensor("token_embd.weight", np.zeros((V, D), np.float16))
    writer.add_tensor("output_norm.weight", np.zeros(D, np.float32))
    writer.add_tensor("output.weight", np.zeros((V, D), np.float16))
    for i in range(L):
        for name, shape in names.items():
            data = np.zeros(shape, np.float32)
            if quantised:
                packed = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
                writer.add_tensor(f"blk.{i}.{name}.weight", packed, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            else:
                writer.add_tensor(f"blk.{i}.{name}.weight", data.astype(np.float16))
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.zeros(D, np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.zeros(D, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_a_gguf_file_is_mapped_and_its_types_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tiny.gguf"
    write_gguf(path)
    code, out, _ = run(capsys, "--config", str(path), "--tokens", "1k", "--json")
    assert code == 0
    record = json.loads(out)
    assert record["model"]["params"] == PARAMS
    check = record["checkpoint"]
    maps = L * (2 * D * H * DH + 2 * D * K * DH + 3 * D * F)
    assert check["params_in_headers"] == PARAMS and check["difference_params"] == 0
    assert check["bytes_by_dtype"] == {"Q8_0": maps // 32 * 34, "F16": 2 * 2 * V * D, "F32": 4 * (2 * L + 1) * D}
    code, out, _ = run(capsys, "inspect", str(path))
    assert code == 0 and "Q8_0" in out


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("short.safetensors", b"\x05\x00\x00", "header too small"),
        ("huge.safetensors", struct.pack("<Q", 10**12) + b"{}", "header too large"),
        ("badjson.safetensors", struct.pack("<Q", 8) + b"notjson!", "invalid JSON in header"),
        ("truncated.safetensors", None, "not a readable safetensors file"),
    ],
)
def test_bad_safetensors_files_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes | None, needle: str
) -> None:
    from safetensors.numpy import save_file

    where = tmp_path / "bad"
    where.mkdir()
    (where / "config.json").write_text(json.dumps(CONFIG))
    if content is None:  # a real file cut inside its data
        save_file(tensors(), str(where / name))
        raw = (where / name).read_bytes()
        content = raw[: len(raw) // 2]
    (where / name).write_bytes(content)
    code, out, err = run(capsys, "inspect", str(where))
    assert code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1, err
    assert needle in err and "Traceback" not in err


def test_bad_gguf_files_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.gguf"
    write_gguf(good, quantised=False)
    raw = good.read_bytes()
    cases = {
        "version.gguf": (raw[:4] + struct.pack("<I", 99) + raw[8:], "version 99"),
        "cut.gguf": (raw[:40], "not a readable GGUF file"),
        "magic.gguf": (b"NOPE" + raw[4:], "not a readable GGUF file"),
    }
    for name, (content, needle) in cases.items():
        (tmp_path / name).write_bytes(content)
        code, out, err = run(capsys, "--config", str(tmp_path / name))
        assert code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1, (name, err)
        assert needle in err, (name, err)
    other = tmp_path / "falcon.gguf"
    write_gguf(other, architecture="falcon", quantised=False)
    code, _, err = run(capsys, "--config", str(other))
    assert code == 2 and "GGUF architecture 'falcon' is not mapped" in err
