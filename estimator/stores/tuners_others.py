"""peft's remaining tuners that build a causal LM with their defaults: HiRA, BEFT, AdaLoRA and Poly on linear
maps; P-tuning and Cartridges on virtual tokens (``--virtual-tokens``); LN tuning on the norms, as peft 0.21
builds them.

Worked numbers: Llama 3 70B, all-linear (M = 560 maps, Σ c_m (d_in + d_out) = 12,943,360, Σ c_m d_out =
6,717,440), r = 32, n = 20 virtual tokens, d = 8,192.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from estimator.errors import EstimatorError, MethodNotApplicableError
from estimator.query.vocabulary import Method
from estimator.stores.tuners import Elements, Knob, PeftTuner

if TYPE_CHECKING:
    from estimator.layout import LinearMap
    from estimator.query import Query
    from estimator.stores.peft_configs import PeftConfig

ADALORA_TOTAL_STEP = 1  # peft refuses AdaLoRA without a schedule length; it sizes nothing


def _sum(maps: tuple[LinearMap, ...], per_map: int, per_width: int) -> int:
    """Σ c_m (per_width · (d_in + d_out) + per_map)."""
    return sum((per_width * (m.d_in + m.d_out) + per_map) * m.copies for m in maps)


class HiRA(PeftTuner):
    method = Method.hira
    title, peft_kind = "HiRA", "HiraConfig"
    formula = "A (r × d_in) and B (d_out × r) per map, applied as a Hadamard product with the base weight;"

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        """r · Σ c_m (d_in + d_out) (Llama 3 70B, r = 32: 414,187,520, as LoRA)."""
        n = _sum(maps, 0, q.rank)
        return Elements(n, n, n)


class BEFT(PeftTuner):
    method = Method.beft
    title, peft_kind = "BEFT", "BeftConfig"
    rank_knob = None
    conv1d = False
    formula = "a bias of d_out per map;"

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        """Σ c_m d_out (Llama 3 70B: 6,717,440)."""
        n = sum(m.d_out * m.copies for m in maps)
        return Elements(n, n, n)


class AdaLoRA(PeftTuner):
    method = Method.adalora
    title, peft_kind = "AdaLoRA", "AdaLoraConfig"
    rank_knob = "init_r"
    formula = (
        "an SVD-shaped LoRA per map, P (init_r × d_in), Q (d_out × init_r) and the singular values E (init_r), "
        "as created (the budget later prunes E to target_r on average, the shapes stay);"
    )

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        """init_r · Σ c_m (d_in + d_out + 1) (Llama 3 70B, init_r = 32: 414,187,520 + 32 · 560 = 414,205,440)."""
        n = _sum(maps, q.rank, q.rank)
        return Elements(n, n, n)

    def peft_config(self, q: Query) -> PeftConfig:
        config = super().peft_config(q)
        config.kwargs["total_step"] = ADALORA_TOTAL_STEP
        return config


class Poly(PeftTuner):
    method = Method.poly
    title, peft_kind = "Poly", "PolyConfig"
    knobs: ClassVar[dict[str, Knob]] = {"n_tasks": 1, "n_skills": 4, "n_splits": 1}
    conv1d = False
    formula = "n_skills LoRAs of rank r per map and n_tasks × n_splits · n_skills routing logits;"

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        """Σ c_m (S · r · (d_in + d_out) + T · P · S) for S skills, T tasks, P splits.
        Llama 3 70B, r = 32, S = 4, T = P = 1: 4 · 414,187,520 + 4 · 560 = 1,656,752,320."""
        tasks, skills, splits = (knobs[k] for k in ("n_tasks", "n_skills", "n_splits"))
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (tasks, skills, splits)):
            raise EstimatorError("Poly's n_tasks, n_skills and n_splits must be positive whole numbers")
        assert isinstance(tasks, int) and isinstance(skills, int) and isinstance(splits, int)
        if any(m.d_in % splits or m.d_out % splits for m in maps):
            raise MethodNotApplicableError(f"Poly's n_splits {splits} must divide every width")
        n = _sum(maps, tasks * splits * skills, skills * q.rank)
        return Elements(n, n, n)


def no_heads(q: Query) -> dict[str, object]:
    """peft's prompt learning asks for ``num_attention_heads`` where config.json has none (Mamba); it sizes nothing
    but prefix tuning's cache, so these tuners pass 1."""
    return {} if q.spec.num_attention_heads else {"num_attention_heads": 1}


class _Virtual(PeftTuner):
    """A tuner of ``--virtual-tokens`` virtual tokens: no linear maps, no rank."""

    rank_knob = None
    heads_free: ClassVar[bool] = True  # sized without attention heads (all but a cache of virtual tokens)

    def maps(self, q: Query) -> tuple[LinearMap, ...]:
        return ()

    def label(self, q: Query) -> str:
        return f"{self.title} ({q.virtual_tokens} virtual tokens, {q.adapter_dtype.value})"

    def peft_config(self, q: Query) -> PeftConfig:
        from estimator.stores.peft_configs import PeftConfig

        kwargs = {"task_type": "CAUSAL_LM", "num_virtual_tokens": q.virtual_tokens, **self.settings(q)}
        return PeftConfig(self.peft_kind, {**kwargs, **(no_heads(q) if self.heads_free else {})})


class PTuning(_Virtual):
    method = Method.p_tuning
    title, peft_kind = "P-tuning", "PromptEncoderConfig"
    formula = (
        "n virtual token embeddings of d through an MLP d -> d -> d -> d (encoder_hidden_size = d, peft's default) "
        "while training; the file keeps the n output embeddings only;"
    )

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        """trained = n · d + 3 · d² + 3 · d (three linear layers with biases); saved = minimal = n · d.
        Llama 3 70B, n = 20: 163,840 + 201,326,592 + 24,576 = 201,515,008 trained; 163,840 saved."""
        d, n = q.spec.hidden_size, q.virtual_tokens
        return Elements(n * d + 3 * d * d + 3 * d, n * d, n * d)


class Cartridge(_Virtual):
    method = Method.cartridge
    title, peft_kind = "Cartridge", "CartridgeConfig"
    heads_free = False
    knobs: ClassVar[dict[str, Knob]] = {"num_frozen_tokens": 1}
    formula = (
        "a trained KV cache of n virtual tokens (as prefix tuning), its first num_frozen_tokens frozen but saved "
        "(an attention sink, not regenerable from a seed);"
    )

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        """per token e = 2 · L · K · d_h (peft's prefix width, from config.json's heads as
        :func:`~estimator.stores.peft_rules.peft_prefix_params` states where it differs from the cache);
        trained = (n − f) · e, saved = minimal = n · e.
        Llama 3 70B, n = 20, f = 1: e = 2 · 80 · 8 · 128 = 163,840: 3,112,960 trained, 3,276,800 saved."""
        from estimator.stores.peft_rules import peft_prefix_params

        frozen = knobs["num_frozen_tokens"]
        n = q.virtual_tokens
        if isinstance(frozen, bool) or not isinstance(frozen, int) or not 0 <= frozen <= n:
            raise EstimatorError(f"Cartridge's num_frozen_tokens {frozen!r} must lie in [0, {n}] (--virtual-tokens)")
        if not q.spec.num_attention_heads:
            raise MethodNotApplicableError(f"{q.spec.display_name} has no attention heads to prepend a cache to")
        own = peft_prefix_params(q.spec, n)  # where peft's prefix width is not the cache's (Falcon, MLA): peft's
        per_token = own[0] // n if own else 2 * q.spec.num_hidden_layers * q.spec.kv_heads * q.spec.attention_head_dim
        return Elements((n - frozen) * per_token, n * per_token, n * per_token)


class LNTuning(PeftTuner):
    method = Method.ln_tuning
    title, peft_kind = "LN tuning", "LNTuningConfig"
    rank_knob = None
    formula = "a trained copy of each norm peft targets by default for the family (weights and biases);"

    def maps(self, q: Query) -> tuple[LinearMap, ...]:
        return ()

    def label(self, q: Query) -> str:
        return f"LN tuning ({q.adapter_dtype.value})"

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        """Σ of the targeted norms' parameters. Llama 3 70B (input_layernorm, post_attention_layernorm, norm):
        2 · 80 · 8,192 + 8,192 = 1,318,912."""
        from estimator.architecture import layout_of
        from estimator.stores.peft_rules import peft_conventions

        names = peft_conventions(q.spec).ln_tuning
        if peft_conventions(q.spec).ln_tuning_unnamed:
            raise MethodNotApplicableError(
                f"peft tunes {q.spec.model_type}'s norms by their module names, which the layout keeps together"
            )
        if names is None:
            raise MethodNotApplicableError(f"peft has no default LN-tuning targets for {q.spec.model_type}")
        n = sum(t.params for t in layout_of(q.spec).other_tensors() if t.name in names)
        return Elements(n, n, n)

    def peft_config(self, q: Query) -> PeftConfig:
        from estimator.stores.peft_configs import PeftConfig

        return PeftConfig(self.peft_kind, {"task_type": "CAUSAL_LM"})


class Peanut(PeftTuner):
    method = Method.peanut
    title, peft_kind = "PEANuT", "PeanutConfig"
    knobs: ClassVar[dict[str, Knob]] = {"depth": 0}
    conv1d = False
    formula = "A (r × d_out) and B (d_out × r) on the map's output, and depth pairs of r × r in between;"

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        """Σ c_m (2 · r · d_out + 2 · depth · r²). Llama 3 70B, r = 32, depth 0: 64 · 6,717,440 = 429,916,160."""
        depth = knobs["depth"]
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise EstimatorError(f"PEANuT's depth {depth!r} must be a whole number of at least 0")
        n = sum((2 * q.rank * m.d_out + 2 * depth * q.rank**2) * m.copies for m in maps)
        return Elements(n, n, n)


class DeFT(PeftTuner):
    method = Method.deft
    title, peft_kind = "DeFT", "DeftConfig"
    knobs: ClassVar[dict[str, Knob]] = {"para": False}
    formula = "P (d_out × r') and, unless para (PaRa), R (r' × d_in) per map, r' = min(r, d_out);"

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        """Σ c_m r' (d_out + d_in) (PaRa: Σ c_m r' d_out), r' = min(r, d_out) (peft caps the projection's rank at
        d_out: Qwen1.5-MoE's shared_expert_gate, 2,048 -> 1, gets r' = 1). Llama 3 70B, r = 32: 414,187,520."""
        n = sum(min(q.rank, m.d_out) * (m.d_out + (0 if knobs["para"] else m.d_in)) * m.copies for m in maps)
        return Elements(n, n, n)


class PSOFT(PeftTuner):
    method = Method.psoft
    title, peft_kind = "PSOFT", "PsoftConfig"
    knobs: ClassVar[dict[str, Knob]] = {"psoft_orth": True, "psoft_mag_a": True, "psoft_mag_b": True}
    conv1d = False
    formula = (
        "an r × r rotation (r (r − 1) / 2 skew entries when orthogonal) and two magnitude vectors of r per map, "
        "inside the base weight's top-r singular subspace (derived from the base model, not saved);"
    )

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        """M · (r (r − 1) / 2 + 2 r). Llama 3 70B, r = 32: 560 · (496 + 64) = 313,600."""
        r = q.rank
        small = [m.short_name for m in maps if r > min(m.d_in, m.d_out)]
        if small:
            raise MethodNotApplicableError(
                f"PSOFT's rank {r} exceeds the smaller width of {', '.join(dict.fromkeys(small))}; lower --rank"
            )
        rotation = r * (r - 1) // 2 if knobs["psoft_orth"] else r * r
        n = (rotation + r * bool(knobs["psoft_mag_a"]) + r * bool(knobs["psoft_mag_b"])) * sum(m.copies for m in maps)
        return Elements(n, n, n)


class SuperTuning(PeftTuner):
    method = Method.supertuning
    title, peft_kind = "SuperTuning", "SupertuningConfig"
    rank_knob = None  # peft's optional r adds a LoRA beside the sparse part; None by default
    knobs: ClassVar[dict[str, Knob]] = {"sparsity": 0.99, "save_precomputed_indices": True}
    conv1d = False
    formula = (
        "k = ⌊d_in · d_out · (1 − sparsity)⌋ trained entries per map at positions ranked from the base weight, "
        "saved with their int32 indices (recomputable from the base model: minimal without them);"
    )

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        """trained = minimal = Σ c_m k_m; saved adds k_m int32 indices per map. Llama 3 70B, sparsity 0.99:
        q, o 671,088; k, v 83,886; gate, up, down 2,348,810: 80 · 8,556,378 = 684,510,240."""
        sparsity = knobs["sparsity"]
        if isinstance(sparsity, bool) or not isinstance(sparsity, int | float) or not 0 <= sparsity < 1:
            raise EstimatorError(f"SuperTuning's sparsity {sparsity!r} must lie in [0, 1)")
        n = sum(int(m.d_in * m.d_out * (1 - sparsity)) * m.copies for m in maps)  # peft's float product
        indices = n if knobs["save_precomputed_indices"] else 0
        return Elements(n, n, n, indices, 0, 32)


OTHER_TUNERS: tuple[PeftTuner, ...] = (
    HiRA(), BEFT(), AdaLoRA(), Poly(), PTuning(), Cartridge(), LNTuning(), Peanut(), DeFT(), PSOFT(), SuperTuning()
)  # fmt: skip
