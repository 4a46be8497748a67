"""The last of peft 0.21's tuners that build a causal LM: GLoRA, Lily, OSF and FRoD on linear maps; multitask prompt
tuning, CPT, LLaMA-Adapter (adaption prompt) and trainable tokens on tokens; ShadowPEFT beside the decoder blocks, as
peft 0.21 builds and saves them. (X-LoRA mixes trained LoRAs and is refused by name; AdaMSS needs scikit-learn to
build, which this environment lacks, so it is not yet a row.)

Worked numbers: Llama 3 70B, all-linear (M = 560 maps; Σ c_m d_in = 6,225,920, Σ c_m d_out = 6,717,440), r = 32,
n = 20 virtual tokens, d = 8,192.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from estimator.errors import EstimatorError, MethodNotApplicableError
from estimator.families import conventions_of
from estimator.query.vocabulary import Method
from estimator.stores.tuners import Elements, Knob, PeftTuner
from estimator.stores.tuners_others import _Virtual
from estimator.stores.tuners_shadow import Shadow

if TYPE_CHECKING:
    from estimator.layout import LinearMap
    from estimator.query import Query
    from estimator.stores.peft_configs import PeftConfig

INT64_BITS = 64  # FRoD keeps its sparse positions and sizes as torch.long
ADAPTION_PROMPT_FAMILIES = ("llama", "mistral", "gpt2")  # peft's TRANSFORMERS_MODEL_CONFIG for adaption prompts
GLORA_A_B = {"lora": "two LoRAs", "vector": "two vectors of d_out", "constant": "two scalars", "none": "nothing"}
GLORA_C = ("lora", "vector", "none")
GLORA_D_E = ("vector", "constant", "none")
PEFT_MINIMAL_TARGETS = 20  # peft's MIN_TARGET_MODULES_FOR_OPTIMIZATION: from so many full paths, it keeps suffixes


def glora_elements(maps: tuple[LinearMap, ...], rank: int, a_b: str, c: str, d_e: str) -> Elements:
    """GLoRA: W' = W (1 + A) + B, b' = b (1 + D) + E + W C per map. A and B: two LoRAs (Xd: d_out × r, Xu: r × d_in),
    two vectors of d_out or two scalars; C (only with a bias): a LoRA of d_in × 1 (r · (d_in + 1)) or a vector of
    d_in; D and E (only with a bias): two vectors of d_out or two scalars. A part set to none, or C, D and E on a map
    without a bias, is a buffer of zeros that ``save_pretrained`` writes too (A, B: d_out × d_in; C: d_in; D, E: d_out).

    trained = Σ c_m (2 r (d_in + d_out) [+ C + D + E with a bias]); saved adds the zeros; minimal = trained.
    Llama 3 70B (no biases), r = 32: 2 · 414,187,520 = 828,375,040 trained; zeros Σ c_m (d_in + 2 d_out) =
    6,225,920 + 13,434,880 = 19,660,800, saved 848,035,840.
    """
    for value, valid, name in ((a_b, tuple(GLORA_A_B), "config_A_B"), (c, GLORA_C, "config_C"),
                               (d_e, GLORA_D_E, "config_D_E")):  # fmt: skip
        if value not in valid:
            raise EstimatorError(f"GLoRA's {name} {value!r} is unknown; give one of {', '.join(valid)}")
    trained = zeros = 0
    for m in maps:
        a = {"lora": 2 * rank * (m.d_in + m.d_out), "vector": 2 * m.d_out, "constant": 2, "none": 0}[a_b]
        a_zeros = 2 * m.d_in * m.d_out if a_b == "none" else 0
        c_part = {"lora": rank * (m.d_in + 1), "vector": m.d_in, "none": 0}[c] if m.bias else 0
        c_zeros = m.d_in if not m.bias or c == "none" else 0
        d_part = {"vector": 2 * m.d_out, "constant": 2, "none": 0}[d_e] if m.bias else 0
        d_zeros = 2 * m.d_out if not m.bias or d_e == "none" else 0
        trained += (a + c_part + d_part) * m.copies
        zeros += (a_zeros + c_zeros + d_zeros) * m.copies
    return Elements(trained, trained + zeros, trained)


def lily_elements(
    maps: tuple[LinearMap, ...], rank: int, stride_a: int = 1, num_b: int = 2, suffixes: tuple[str, ...] | None = ()
) -> Elements:
    """Lily: per map a router (r × num_B) and an A (r × d_in) shared by each run of ``stride_A`` layers; one B
    (num_B · r × d_out) shared by all maps of the same target name and shape. peft counts each shared tensor once
    (trained) and ``save_pretrained`` writes it under every map that holds it (saved: A, B and router per instance).
    A map's group is the target suffixes its module path ends with (``suffixes``, peft's ``target_modules``). peft
    0.21 expands ``all-linear`` to each module's full path and, from 20 modules on, condenses them to the short names
    (``q_proj``, ...); below 20 (two-layer twins) each full path is its own group and nothing is shared (``None``).

    trained = Σ_groups (⌈n_g / stride_A⌉ r d_in + num_B r d_out + n_g r num_B), n_g the group's instances;
    saved = Σ c_m r (d_in + num_B d_out + num_B); minimal = trained.
    Llama 3 70B, r = 32, stride 1, num_B 2 (all-linear: 560 modules, condensed to their 7 short names): 32 · 6,225,920
    + 64 · 83,968 + 560 · 64 = 199,229,440 + 5,373,952 + 35,840 = 204,639,232 trained; 199,229,440 + 64 · 6,717,440
    + 35,840 = 629,181,440 saved.
    """
    saved = sum(rank * (m.d_in + num_b * m.d_out + num_b) * m.copies for m in maps)
    if suffixes is None:
        return Elements(saved, saved, saved)
    groups: dict[tuple[tuple[str, ...], int, int], int] = {}
    for m in maps:
        key = (tuple(s for s in suffixes if m.name.endswith(s)) or (m.name,), m.d_in, m.d_out)
        groups[key] = groups.get(key, 0) + m.copies
    trained = sum(
        -(-n // stride_a) * rank * d_in + num_b * rank * d_out + n * rank * num_b
        for (_, d_in, d_out), n in groups.items()
    )
    return Elements(trained, saved, trained)


def osf_kept_rank(d_in: int, d_out: int, effective_rank: float) -> int:
    """OSF's frozen rank k of a map, as peft resolves ``effective_rank``: a fraction of min(d_in, d_out) when in
    (0, 1] (int of the product), else the whole number given, at most min(d_in, d_out). 0.5 (peft's None) on 8,192 ->
    4,096."""
    small = min(d_in, d_out)
    kept = int(small * effective_rank) if 0 < effective_rank <= 1 else int(effective_rank)
    return max(min(small, kept), 0)


def osf_params(maps: tuple[LinearMap, ...], effective_rank: float) -> int:
    """OSF (orthogonal subspace fine-tuning): the weight's SVD keeps its top k singular directions frozen and trains the
    rest, U_low (d_out × (m − k)), S_low (m − k) and V_low ((m − k) × d_in), m = min(d_in, d_out):
    Σ c_m (m − k)(d_in + d_out + 1). The frozen parts (and the initial low parts) are buffers derived from the base
    weight, never saved: saved = minimal = trained.
    Llama 3 70B, k = m / 2: q, o 4,096 · 16,385; k, v 512 · 9,217; gate, up, down 4,096 · 36,865: 80 · 596,661,248 =
    47,732,899,840 (two thirds of the model: it retrains the lower half of every spectrum).
    """
    total = 0
    for m in maps:
        kept = osf_kept_rank(m.d_in, m.d_out, effective_rank)
        if kept < 1:
            raise MethodNotApplicableError(
                f"OSF's effective_rank {effective_rank} keeps no direction of {m.short_name} (min width "
                f"{min(m.d_in, m.d_out)}); peft refuses a rank of 0: give --tuner-option effective_rank=1 or "
                "other --targets"
            )
        total += (min(m.d_in, m.d_out) - kept) * (m.d_in + m.d_out + 1) * m.copies
    return total


def frod_category(linear: LinearMap) -> str:
    """FRoD's category of a map, as peft names it from the module path: the parent and the name joined
    (``self_attn.q_proj`` -> ``self_attn_q_proj``), the bare name under a numbered expert."""
    if linear.expert:
        return linear.short_name
    parts = linear.name.split(".")
    return parts[-1] if len(parts) == 1 else f"{parts[-2]}_{parts[-1]}"


def frod_nonzeros(d_in: int, sparse_rate: float) -> int:
    """FRoD's sparse off-diagonal entries of a d_in × d_in rotation: int(d_in² · sparse_rate) (peft's float product),
    at most d_in² − d_in, at least 1 when the rate is positive. 8,192 at 0.01: 671,088."""
    entries = min(int(d_in * d_in * sparse_rate), d_in * d_in - d_in)
    return max(1, entries) if sparse_rate > 0 and d_in > 1 else entries


def frod_elements(maps: tuple[LinearMap, ...], sparse_rate: float = 0.01, save_projection: bool = True) -> Elements:
    """FRoD: per category of map (q, k, ..., across layers) a d_in × d_in basis V from a joint decomposition of the
    base weights, and a random sparse pattern of s = :func:`frod_nonzeros` positions (from ``projection_prng_key``);
    per map a scale λ_l of d_in and the s sparse values, trained. With ``save_projection`` the file also holds each
    category's V (d_in²), its 2 · s positions and its 2 sizes (int64); both are regenerated from the base model and
    the seed: minimal = trained.
    Llama 3 70B: q, k, v, o, gate, up (d_in 8,192: s = 671,088), down (28,672: s = 8,220,835): trained
    80 · (6 · 679,280 + 8,249,507) = 986,014,960; saved + 6 · 8,192² + 28,672² = 1,224,736,768 floats and
    2 · 12,247,363 + 14 = 24,494,740 int64.
    """
    if not 0 <= sparse_rate <= 1:
        raise EstimatorError(f"FRoD's sparse_rate {sparse_rate} must lie in [0, 1]")
    trained = sum((m.d_in + frod_nonzeros(m.d_in, sparse_rate)) * m.copies for m in maps)
    categories: dict[str, int] = {}
    for m in maps:
        if categories.setdefault(frod_category(m), m.d_in) != m.d_in:
            raise MethodNotApplicableError(
                f"peft's FRoD stacks every {frod_category(m)} map into one basis, but their input widths differ"
            )
    bases = sum(d_in * d_in for d_in in categories.values()) if save_projection else 0
    positions = sum(2 * frod_nonzeros(d_in, sparse_rate) + 2 for d_in in categories.values()) if save_projection else 0
    return Elements(trained, trained + bases, trained, positions, 0, INT64_BITS)


class GLoRA(PeftTuner):
    method = Method.glora
    title, peft_kind = "GLoRA", "GloraConfig"
    conv1d = False
    knobs: ClassVar[dict[str, Knob]] = {"config_A_B": "lora", "config_C": "lora", "config_D_E": "constant"}
    formula = (
        "two LoRAs (a scale A and a shift B of the weight) per map, and with a bias a LoRA C and two scalars D, E; "
        "parts a map lacks are saved as zeros;"
    )

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        subclass = conventions_of(q.spec.model_type).transformers.linear_subclass  # Falcon's FalconLinear
        if subclass is not None:
            raise MethodNotApplicableError(
                f"peft's GLoRA adapts plain nn.Linear only, not {q.spec.model_type}'s {subclass}"
            )
        return glora_elements(maps, q.rank, str(knobs["config_A_B"]), str(knobs["config_C"]), str(knobs["config_D_E"]))


class Lily(PeftTuner):
    method = Method.lily
    title, peft_kind = "Lily", "LilyConfig"
    conv1d = False
    knobs: ClassVar[dict[str, Knob]] = {"stride_A": 1, "num_B": 2}
    formula = (
        "A (r × d_in) per map (shared by stride_A layers), one B (num_B · r × d_out) per target name and shape "
        "across layers (none below 20 modules under all-linear, which peft keeps as full paths), a router (r × num_B) "
        "per map; the file repeats each shared tensor under every map;"
    )

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        stride, num_b = knobs["stride_A"], knobs["num_B"]
        for name, value in (("stride_A", stride), ("num_B", num_b)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise EstimatorError(f"Lily's {name} {value!r} must be a positive whole number")
        assert isinstance(stride, int) and isinstance(num_b, int)
        from estimator.stores.kinds import peft_target_modules, targets_of

        names = peft_target_modules(targets_of(q), q.spec)
        if isinstance(names, str):  # all-linear: each module's full path, condensed to suffixes from 20 modules on
            minimal = sum(m.copies for m in maps) >= PEFT_MINIMAL_TARGETS
            return lily_elements(maps, q.rank, stride, num_b, tuple({m.short_name for m in maps}) if minimal else None)
        return lily_elements(maps, q.rank, stride, num_b, tuple(names))


class OSF(PeftTuner):
    method = Method.osf
    title, peft_kind = "OSF", "OSFConfig"
    conv1d = False
    rank_knob = None  # OSF's effective_rank is the frozen rank, not an adapter's: peft's default keeps half
    knobs: ClassVar[dict[str, Knob]] = {"effective_rank": 0.5}  # peft's None: min(d_in, d_out) // 2 = int(m · 0.5)
    formula = (
        "the weight's singular directions below the top k trained (U, S, V of the rest: (m − k)(d_in + d_out + 1) per "
        "map, m = min(d_in, d_out), k = effective_rank, a fraction of m when at most 1: peft's default is m / 2);"
    )

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        rank = knobs["effective_rank"]
        if isinstance(rank, bool) or not isinstance(rank, int | float) or rank <= 0:
            raise EstimatorError(f"OSF's effective_rank {rank!r} must be positive: a fraction in (0, 1] or a rank")
        n = osf_params(maps, float(rank))
        return Elements(n, n, n)


class FRoD(PeftTuner):
    method = Method.frod
    title, peft_kind = "FRoD", "FrodConfig"
    rank_knob = None
    meta = False  # peft decomposes the base weights while it builds
    knobs: ClassVar[dict[str, Knob]] = {"sparse_rate": 0.01, "save_projection": True}
    formula = (
        "a scale of d_in and sparse_rate · d_in² sparse values per map, over a basis per kind of map derived from the "
        "base weights (saved with save_projection, with its int64 positions);"
    )

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        rate = knobs["sparse_rate"]
        if isinstance(rate, bool) or not isinstance(rate, int | float):
            raise EstimatorError(f"FRoD's sparse_rate {rate!r} must be a number in [0, 1]")
        return frod_elements(maps, float(rate), bool(knobs["save_projection"]))


class MultitaskPromptTuning(_Virtual):
    method = Method.multitask_prompt_tuning
    title, peft_kind = "Multitask prompt tuning", "MultitaskPromptTuningConfig"
    knobs: ClassVar[dict[str, Knob]] = {"num_tasks": 1, "num_ranks": 1}
    formula = "n shared prompt embeddings of d, times per task a rank-R product (n × R and R × d);"

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        """n · d + T · (n · R + R · d). Llama 3 70B, n = 20, T = R = 1: 163,840 + 20 + 8,192 = 172,052."""
        tasks, ranks = knobs["num_tasks"], knobs["num_ranks"]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (tasks, ranks)):
            raise EstimatorError("multitask prompt tuning's num_tasks and num_ranks must be positive whole numbers")
        assert isinstance(tasks, int) and isinstance(ranks, int)
        n, d = q.virtual_tokens, q.spec.hidden_size
        total = n * d + tasks * (n * ranks + ranks * d)
        return Elements(total, total, total)


class CPT(_Virtual):
    method = Method.cpt
    title, peft_kind = "CPT", "CPTConfig"
    formula = "n context token embeddings of d (initialised from the context's own tokens);"

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        """n · d (Llama 3 70B, n = 20: 163,840)."""
        if not q.spec.num_attention_heads:
            raise MethodNotApplicableError(
                f"peft's CPT needs config.json's num_attention_heads (its config resets the override), which "
                f"{q.spec.display_name} lacks"
            )
        n = q.virtual_tokens * q.spec.hidden_size
        return Elements(n, n, n)

    def peft_config(self, q: Query) -> PeftConfig:
        from estimator.stores.peft_configs import PeftConfig

        ids = [i % q.spec.vocab_size for i in range(q.virtual_tokens)]  # which tokens is irrelevant to the size
        return PeftConfig(self.peft_kind, {"task_type": "CAUSAL_LM", "cpt_token_ids": ids})


class AdaptionPrompt(_Virtual):
    method = Method.adaption_prompt
    title, peft_kind = "LLaMA-Adapter", "AdaptionPromptConfig"
    knobs: ClassVar[dict[str, Knob]] = {"adapter_layers": 30}  # peft has no default; LLaMA-Adapter's top 30 layers
    formula = (
        "n adaption-prompt embeddings of d and one zero-initialised gate in each of the top adapter_layers attention "
        "layers (peft has no default: LLaMA-Adapter's 30);"
    )

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        """A · (n · d + 1). Llama 3 70B, n = 20, A = 30: 30 · 163,841 = 4,915,230."""
        layers = knobs["adapter_layers"]
        if q.spec.model_type not in ADAPTION_PROMPT_FAMILIES:
            raise MethodNotApplicableError(
                f"peft's adaption prompt knows only {', '.join(ADAPTION_PROMPT_FAMILIES)}, not {q.spec.model_type}"
            )
        if isinstance(layers, bool) or not isinstance(layers, int) or not 1 <= layers <= q.spec.num_hidden_layers:
            raise MethodNotApplicableError(
                f"LLaMA-Adapter's adapter_layers {layers!r} must lie in [1, {q.spec.num_hidden_layers}] (the model's "
                "layers); give --tuner-option adapter_layers=..."
            )
        n = layers * (q.virtual_tokens * q.spec.hidden_size + 1)
        return Elements(n, n, n)

    def peft_config(self, q: Query) -> PeftConfig:
        from estimator.stores.peft_configs import PeftConfig

        kwargs = {"task_type": "CAUSAL_LM", "adapter_len": q.virtual_tokens, **self.settings(q)}
        return PeftConfig(self.peft_kind, kwargs)


class TrainableTokens(_Virtual):
    method = Method.trainable_tokens
    title, peft_kind = "Trainable tokens", "TrainableTokensConfig"
    formula = (
        "n rows of the token embedding (d each) trained, the rest frozen; with tied embeddings the output layer's "
        "rows follow them and the file holds them twice;"
    )

    def label(self, q: Query) -> str:
        return f"{self.title} ({q.virtual_tokens} embedding rows, {q.adapter_dtype.value})"

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        """trained = minimal = n · d; saved = n · d, twice with tied embeddings (peft writes the embedding's delta and
        the tied output layer's). Llama 3 70B (untied), n = 20: 163,840 each; Qwen3 0.6B (tied, d = 1,024): 20,480
        trained, 40,960 saved."""
        if q.virtual_tokens > q.spec.vocab_size:
            raise MethodNotApplicableError(
                f"trainable tokens: {q.virtual_tokens:,} rows exceed the vocabulary of {q.spec.vocab_size:,}"
            )
        n = q.virtual_tokens * q.spec.hidden_size
        return Elements(n, 2 * n if q.spec.tie_word_embeddings else n, n)

    def peft_config(self, q: Query) -> PeftConfig:
        from estimator.stores.peft_configs import PeftConfig

        return PeftConfig(self.peft_kind, {"token_indices": list(range(q.virtual_tokens))})


LAST_TUNERS: tuple[PeftTuner, ...] = (
    GLoRA(), Lily(), OSF(), FRoD(), MultitaskPromptTuning(), CPT(), AdaptionPrompt(), TrainableTokens(), Shadow()
)  # fmt: skip
