"""A peft adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``): its real rank, targets,
parameters and bytes from the header, next to the estimate for the same settings on its base model."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from estimator.checkpoint.files import inside, printable
from estimator.checkpoint.safetensors_files import ADAPTER_FILE, TensorInfo, read_header, read_json, root_of
from estimator.errors import EstimatorError

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

LORA_PARTS = (".lora_A.", ".lora_B.", ".lora_magnitude_vector")


@dataclass(frozen=True)
class Adapter:
    """What a peft folder holds, from its config and its header."""

    folder: Path
    config: dict[str, Any]
    tensors: tuple[TensorInfo, ...]

    @property
    def peft_type(self) -> str:
        return printable(str(self.config.get("peft_type", "?")), 40)

    @property
    def rank(self) -> int | None:
        r = self.config.get("r")
        return r if isinstance(r, int) and not isinstance(r, bool) and r > 0 else None

    @property
    def ranks_found(self) -> tuple[int, ...]:
        """The ranks the lora_A matrices really have (their first dimension)."""
        return tuple(sorted({t.shape[0] for t in self.tensors if ".lora_A." in t.name and t.shape}))

    @property
    def modules(self) -> tuple[str, ...]:
        """Short names of the adapted modules (q_proj, ...), in order of appearance."""
        found: dict[str, None] = {}
        for t in self.tensors:
            for part in LORA_PARTS:
                if part in t.name:
                    found[t.name.split(part)[0].rsplit(".", 1)[-1]] = None
        return tuple(found)

    @property
    def params(self) -> int:
        return sum(t.numel for t in self.tensors if "modules_to_save" not in t.name)

    @property
    def saved_modules_params(self) -> int:
        return sum(t.numel for t in self.tensors if "modules_to_save" in t.name)

    @property
    def bytes_by_dtype(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for t in self.tensors:
            counts[t.dtype] += t.nbytes
        return dict(counts)

    @property
    def dora(self) -> bool:
        return bool(self.config.get("use_dora"))

    @property
    def base(self) -> str | None:
        base = self.config.get("base_model_name_or_path")
        return base if isinstance(base, str) and base.strip() else None

    def describe(self) -> str:
        """``peft adapter: LORA r=8 on q_proj, v_proj: 1,048,576 parameters in 64 tensors (F32 4.19 MB)``."""
        ranks = self.ranks_found
        found = "" if ranks == ((self.rank,) if self.rank else ()) else f" (lora_A ranks found: {list(ranks)})"
        from estimator.units import format_bytes

        dtypes = ", ".join(f"{d} {format_bytes(b)}" for d, b in sorted(self.bytes_by_dtype.items()))
        saved = f"; plus {self.saved_modules_params:,} in modules_to_save" if self.saved_modules_params else ""
        kind = f"{self.peft_type}{' (DoRA)' if self.dora else ''} r={self.rank}{found}"
        modules = printable(", ".join(self.modules) or "nothing", 1000)
        return (
            f"peft adapter {printable(self.folder.name)}: {kind} on {modules}: {self.params:,} "
            f"parameters in {len(self.tensors):,} tensors ({dtypes}){saved}"
        )


def read_adapter(folder: Path) -> Adapter:
    """The adapter in ``folder``; one line if its config or its safetensors file is missing or unreadable."""
    config_path, weights = folder / "adapter_config.json", folder / ADAPTER_FILE
    if not config_path.exists():
        raise EstimatorError(f"{folder} has no adapter_config.json; pass a peft adapter folder")
    if not weights.exists():
        raise EstimatorError(
            f"{folder} has no {ADAPTER_FILE} (adapter_model.bin is not read); re-save with safetensors"
        )
    root = root_of(folder)
    config = read_json(inside(root, config_path), "peft adapter_config.json")
    return Adapter(folder, config, tuple(read_header(inside(root, weights))[0]))


def estimate_for(adapter: Adapter, spec: ModelSpec) -> tuple[int, str]:
    """The estimator's parameters for the same adapter on ``spec`` (rank, targets, DoRA), and its words."""
    from estimator.stores.targets import dora_params, lora_params, resolve_targets

    if adapter.peft_type != "LORA" or adapter.rank is None:
        raise EstimatorError(
            f"{adapter.folder}: only LoRA and DoRA adapters are compared (this is {adapter.peft_type})"
        )
    targets = resolve_targets(spec, ",".join(adapter.modules))
    params = (dora_params if adapter.dora else lora_params)(targets, adapter.rank)
    words = f"{'DoRA' if adapter.dora else 'LoRA'} r={adapter.rank} on {', '.join(adapter.modules)}"
    return params, words


def comparison_line(adapter: Adapter, spec: ModelSpec) -> str:
    """The estimate beside the header's count, the difference named."""
    estimate, words = estimate_for(adapter, spec)
    head = f"Estimate for {words} of {spec.display_name}: {estimate:,} parameters"
    if estimate == adapter.params:
        return f"{head}: the same as the file."
    reasons = []
    if adapter.config.get("layers_to_transform") is not None:
        reasons.append("layers_to_transform adapts only some layers")
    if adapter.config.get("rank_pattern"):
        reasons.append("rank_pattern gives some modules other ranks")
    why = f" ({'; '.join(reasons)})" if reasons else ""
    return f"{head}, the file {adapter.params - estimate:+,}{why}."
