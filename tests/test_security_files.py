"""Hostile files (#25), built here: GGUF headers that announce more than they hold, FIFOs, symlinks out of a
model folder, terminal escapes in names. Each ends in one line and exit 2, quickly, in bounded memory; a real
tokenizer-sized GGUF is parsed once, in well under a second."""

from __future__ import annotations

import json
import os
import resource
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from estimator.checkpoint import gguf_reader
from estimator.checkpoint.files import printable

from .test_checkpoint import CONFIG, folder, tensors, write_gguf
from .test_cli import run

U8, I32, U32, STRING, ARRAY, U64 = 0, 5, 4, 8, 9, 10


def gstr(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def header(n_tensors: int, n_keys: int, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_keys)


def key(name: str, kind: int, payload: bytes) -> bytes:
    return gstr(name) + struct.pack("<I", kind) + payload


def nested(depth: int) -> bytes:
    """An array of arrays ``depth`` deep, one uint8 at the bottom."""
    inner = struct.pack("<IQ", U8, 1) + b"\x01"
    for _ in range(depth - 1):
        inner = struct.pack("<IQ", ARRAY, 1) + inner
    return inner


def tensor_entry(name: str, dims: tuple[int, ...], ggml_type: int = 0, offset: int = 0) -> bytes:
    return gstr(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims) + \
        struct.pack("<IQ", ggml_type, offset)  # fmt: skip


HOSTILE = {  # name -> (bytes, what the one line says)
    "49-byte array of 2^63 bytes": (
        header(0, 1) + key("a", ARRAY, struct.pack("<IQ", U8, 2**63)),
        "needs",
    ),
    "array of 2^40 strings": (header(0, 1) + key("t", ARRAY, struct.pack("<IQ", STRING, 2**40)), "needs"),
    "string of 2^60 bytes": (header(0, 1) + key("s", STRING, struct.pack("<Q", 2**60)), "over the"),
    "string longer than the file": (header(0, 1) + key("s", STRING, struct.pack("<Q", 5000) + b"x"), "needs"),
    "2^62 keys": (header(0, 2**62), "keys needs"),
    "2^62 tensors": (header(2**62, 0), "tensors needs"),
    "arrays nested 3 deep": (header(0, 1) + key("n", ARRAY, nested(3)), "nests arrays more than 2 deep"),
    "unknown value type": (header(0, 1) + key("u", 99, b"\x00" * 8), "value type 99"),
    "unknown array type": (header(0, 1) + key("u", ARRAY, struct.pack("<IQ", 77, 1)), "value type 77"),
    "a key twice": (header(0, 2) + key("k", U32, b"\x01\x00\x00\x00") * 2, "appears twice"),
    "key not UTF-8": (header(0, 1) + gstr(b"\xff\xfe") + struct.pack("<IB", U8, 1), "not UTF-8"),
    "tensor of 5 dimensions": (header(1, 0) + tensor_entry("w", (1, 1, 1, 1, 1)), "at most 4"),
    "tensor past the end": (header(1, 0) + tensor_entry("w", (2**32, 2**20)), "past the end"),
    "tensor type 999": (header(1, 0) + tensor_entry("w", (4,), ggml_type=999), "ggml type 999"),
    "quantised row not whole blocks": (header(1, 0) + tensor_entry("w", (33,), ggml_type=8), "not a multiple"),
    "bad alignment": (header(0, 1) + key("general.alignment", U32, struct.pack("<I", 3)), "power of two"),
    "version 1": (header(0, 0, version=1), "version 1"),
    "empty": (b"", "empty"),
    "only the magic": (b"GGUF", "does not start"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_gguf_headers_are_one_line_and_quick(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    content, needle = HOSTILE[case]
    path = tmp_path / "hostile.gguf"
    path.write_bytes(content)
    for command in (["--config", str(path)], ["inspect", str(path)]):
        start = time.perf_counter()
        code, out, err = run(capsys, *command)
        assert time.perf_counter() - start < 2, (case, command)
        assert code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1, (case, err)
        assert needle in err and "not a readable GGUF file" in err, (case, err)


def test_the_49_byte_file_ends_in_a_bounded_child(tmp_path: Path) -> None:
    """The file that made the gguf package's reader loop forever, under a 1 GiB address-space limit."""
    path = tmp_path / "tiny.gguf"
    path.write_bytes(HOSTILE["49-byte array of 2^63 bytes"][0])
    assert len(path.read_bytes()) == 49

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))

    done = subprocess.run([sys.executable, "-m", "estimator.cli", "inspect", str(path)], capture_output=True, text=True,
                          timeout=60, preexec_fn=limit)  # fmt: skip
    assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1, done.stderr


def test_a_tokenizer_sized_gguf_is_parsed_once_and_quickly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import gguf

    path = tmp_path / "tok.gguf"
    write_gguf(path, quantised=False)
    with_vocab = tmp_path / "vocab.gguf"
    writer = gguf.GGUFWriter(str(with_vocab), "llama")
    reader = gguf.GGUFReader(str(path))  # copy the small model's keys and tensors, then add a 128k vocabulary
    for name, field in reader.fields.items():
        if not name.startswith(("GGUF.", "general.architecture")):
            kind = field.types[0]
            sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(name, field.contents(), kind, sub_type=sub)
    for t in reader.tensors:
        writer.add_tensor(t.name, np.asarray(t.data), raw_dtype=t.tensor_type)
    writer.add_token_list([f"token{i}" for i in range(128_256)])
    writer.add_token_merges([f"t{i} k{i}" for i in range(280_147)])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    calls: list[int] = []
    real: Callable[..., object] = gguf_reader.parse
    monkeypatch.setattr(gguf_reader, "parse", lambda data: calls.append(1) or real(data))
    gguf_reader._parsed.cache_clear()
    start = time.perf_counter()
    code, out, err = run(capsys, "--config", str(with_vocab), "--tokens", "1k", "--json")
    seconds = time.perf_counter() - start
    assert code == 0, err
    assert json.loads(out)["checkpoint"]["difference_params"] == 0
    assert calls == [1] and seconds < 5, (calls, seconds)  # the gguf package's reader: 15-18 s, twice
    metadata, _ = gguf_reader.read(with_vocab)
    assert metadata["tokenizer.ggml.tokens"] == gguf_reader.LongArray("string", 128_256)


def test_a_fifo_or_a_link_out_of_the_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = folder(tmp_path, "model", tensors())
    os.mkfifo(where / "extra.safetensors")
    start = time.perf_counter()
    code, out, err = run(capsys, "inspect", str(where))
    assert code == 2 and out == "" and "is not a regular file" in err and err.count("\n") == 1, err
    (where / "extra.safetensors").unlink()
    outside = tmp_path / "secret.safetensors"
    (where / "model.safetensors").rename(outside)
    (where / "model.safetensors").symlink_to(outside)
    code, out, err = run(capsys, "inspect", str(where))
    assert code == 2 and "points outside" in err and err.count("\n") == 1, err
    (where / "model.safetensors").unlink()
    os.mkfifo(where / "model.gguf")
    code, out, err = run(capsys, "--config", str(where / "model.gguf"))
    assert code == 2 and "not a regular file" in err, err
    index = {"weight_map": {"a": "model-1.safetensors"}}
    (where / "model.safetensors.index.json").write_text(json.dumps(index))
    os.mkfifo(where / "model-1.safetensors")
    code, out, err = run(capsys, "inspect", str(where))
    assert code == 2 and "is not a regular file" in err, err
    assert time.perf_counter() - start < 10


def test_a_deep_or_huge_adapter_config_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors.numpy import save_file

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    save_file({"x.lora_A.weight": np.zeros((2, 4), np.float32)}, str(adapter / "adapter_model.safetensors"))
    for text in ("[" * 100_000 + "]" * 100_000, '{"r": ' + "9" * 4400 + "}"):
        (adapter / "adapter_config.json").write_text(text)
        code, out, err = run(capsys, "inspect", str(adapter))
        assert code == 2 and out == "" and err.count("\n") == 1 and "not valid JSON" in err, err[:300]


def test_names_reach_the_terminal_without_control_characters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import gguf

    path = tmp_path / "named.gguf"
    write_gguf(path, quantised=False)
    raw = path.read_bytes()
    evil = b"\x1b]0;pwned\x07\x1b[2J"
    patched = raw.replace(gstr("tiny-gguf"), gstr(evil + b"tiny"), 1)
    assert patched != raw and gguf.GGUFReader  # the name sits in the header as a GGUF string
    path.write_bytes(patched)
    code, out, _ = run(capsys, "inspect", str(path))
    assert code == 0 and "\x1b" not in out and "\\x1b]0;pwned\\x07" in out
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**CONFIG, "_name_or_path": "evil\x1b[2J\u202ename"}))
    code, out, _ = run(capsys, "--config", str(config), "--tokens", "1k")
    assert code == 0 and out.startswith("evil\\x1b[2J\\u202ename ("), out.splitlines()[0]
    code, _, err = run(capsys, "--model", "no\x1b[2Jsuch")
    assert code == 2 and "\x1b" not in err and "\\x1b" in err
    assert printable("a\u202eb\r\n") == "a\\u202eb\\r\\n"


@pytest.mark.parametrize(
    ("positions", "needle"),
    [("f7+f8", "gives f twice"), ("l1+l2", "gives l twice"), ("f²", "cannot read"), ("f" + "9" * 5000, "cannot read")],
)
def test_loreft_positions_are_read_strictly(capsys: pytest.CaptureFixture[str], positions: str, needle: str) -> None:
    code, out, err = run(capsys, "--model", "gpt2", "--loreft-positions", positions)
    assert code == 2 and out == "" and needle in err and err.count("\n") == 1, err[:300]


def test_the_config_of_a_model_folder_beside_a_fifo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = tmp_path / "m"
    where.mkdir()
    os.mkfifo(where / "config.json")
    code, out, err = run(capsys, "--config", str(where))
    assert code == 2 and out == "" and err.count("\n") == 1, err
    (where / "config.json").unlink()
    (where / "config.json").write_text(json.dumps(CONFIG))
    code, _, err = run(capsys, "--config", str(where), "--tokens", "1k")
    assert code == 0, err


def test_a_device_or_a_linked_config_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--config", "/dev/zero")
    assert code == 2 and out == "" and "is not a regular file" in err, err
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps(CONFIG))
    where = tmp_path / "model"
    where.mkdir()
    (where / "config.json").symlink_to(secret)
    code, out, err = run(capsys, "--config", str(where))
    assert code == 2 and out == "" and "points outside" in err and err.count("\n") == 1, err
