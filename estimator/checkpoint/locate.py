"""What ``--config`` names: a config.json, a model folder, a GGUF file, or a Hub repo id whose snapshot is in
the local Hugging Face cache (never downloaded)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from estimator.checkpoint.files import inside, regular_size
from estimator.errors import EstimatorError

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")
COMMIT = re.compile(r"[0-9a-f]{40}")


def hub_cache() -> Path:
    """The Hugging Face cache: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub."""
    if cache := os.environ.get("HF_HUB_CACHE"):
        return Path(cache)
    home = os.environ.get("HF_HOME")
    return (Path(home) if home else Path.home() / ".cache" / "huggingface") / "hub"


def cached_snapshot(repo_id: str) -> Path:
    """The local snapshot of a model repo: the commit ``refs/main`` names, else the only snapshot there is."""
    org, name = repo_id.split("/")
    root = hub_cache() / f"models--{org}--{name}"
    snapshots = root / "snapshots"
    if not snapshots.is_dir():
        raise EstimatorError(
            f"{repo_id} is not a file here and not in the local Hugging Face cache ({hub_cache()}); nothing is "
            f"downloaded: fetch it first (huggingface-cli download {repo_id}) or pass a path"
        )
    ref = root / "refs" / "main"
    commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else ""
    if COMMIT.fullmatch(commit) and (snapshots / commit).is_dir():
        return snapshots / commit
    found = sorted(p for p in snapshots.iterdir() if p.is_dir())
    if len(found) != 1:
        raise EstimatorError(
            f"{repo_id}: the cache holds {len(found)} snapshots and no refs/main; pass the snapshot's folder"
        )
    return found[0]


def model_path(text: str | Path) -> tuple[Path, str | None]:
    """The path ``--config`` names, and a default name for it (a repo id, or a folder's name)."""
    path = Path(text)
    if not path.exists() and REPO_ID.fullmatch(str(text)):
        return cached_snapshot(str(text)), str(text)
    if path.is_dir() and not COMMIT.fullmatch(path.name):
        return path, path.resolve().name
    return path, None


def spec_from_path(text: str | Path, name: str | None = None) -> ModelSpec:
    """The spec of a config.json, a model folder (its config.json), a ``.gguf`` file, or a cached repo id."""
    from estimator.hf_config import spec_from_hf_config

    path, default = model_path(text)
    if path.exists() and not path.is_dir():
        regular_size(path)  # a FIFO or a device would block the read forever
    if path.suffix.lower() == ".gguf" and path.is_file():
        from estimator.checkpoint.gguf_file import spec_from_gguf

        return spec_from_gguf(path, name)
    if path.is_dir():
        if (path / "config.json").is_file():
            from estimator.checkpoint.safetensors_files import root_of

            inside(root_of(path), path / "config.json")  # never a link out of the folder
            return spec_from_hf_config(path / "config.json", name or default)
        if (path / "adapter_config.json").is_file():
            raise EstimatorError(
                f"{path} is a peft adapter folder, not a model; inspect it with `estimate inspect {path} "
                "--base-model NAME` (or --base-config FOLDER)"
            )
        raise EstimatorError(f"{path} holds no config.json; pass a model folder, a config.json or a .gguf file")
    return spec_from_hf_config(path, name)
