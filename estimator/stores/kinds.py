"""Every way of storing the text, one small type each: the KV cache, LoRA, DoRA, IA3, LoReFT, prefix
and prompt tuning, full fine-tuning, pretraining. Each sizes itself from the query's layout, names
its row, states its assumption and gives the peft configuration that builds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from estimator.architecture import layout_of, linear_maps
from estimator.errors import MethodNotApplicableError
from estimator.layout import ExpertLayout
from estimator.query.vocabulary import Method
from estimator.stores import peft_rules
from estimator.stores.base import Size, Store, loreft_params
from estimator.stores.targets import Targets, dora_params, ia3_params, lora_params, resolve_targets
from estimator.units import bits_to_bytes, format_bytes, format_tokens_short

if TYPE_CHECKING:
    from estimator.layout import KVFormat
    from estimator.query import Query
    from estimator.specs import ModelSpec
    from estimator.stores.peft_configs import PeftConfig


def targets_of(q: Query) -> Targets:
    """The maps LoRA and DoRA adapt for this query (``--targets`` under ``--experts``), resolved once and held
    by the query."""
    return q.resolved_targets


class KVCache(Store):
    method = Method.kv
    trained: ClassVar[bool] = False

    def params(self, q: Query) -> int | None:
        return None

    def size(self, q: Query, kv_bytes: int) -> Size:
        return Size(None, kv_bytes, q.tokens)

    def label(self, q: Query) -> str:
        """``in context (KV cache, bf16)``; with a fixed recurrent state too, or only one, it says so."""
        from estimator.kv import grows, kv_state_bits, windowed

        if not kv_state_bits(q.spec, q.kv):
            return f"in context (KV cache, {q.kv.dtype.value})"
        if not grows(q.spec) and not windowed(q.spec):
            return f"in context (recurrent state, {q.kv.dtype.value})"
        return f"in context (KV cache + state, {q.kv.dtype.value})"


class LoRA(Store):
    method = Method.lora

    def params(self, q: Query) -> int:
        return lora_params(targets_of(q), q.rank)

    def tensors(self, q: Query) -> tuple[int, ...]:
        """A (r · d_in) and B (d_out · r) per adapted map and copy; they sum to :meth:`params`.
        Llama 3 8B, r = 32, all-linear: 448 tensors of 83,886,080 elements."""
        from estimator.memory.training import adapter_tensor_sizes

        return adapter_tensor_sizes(targets_of(q), q.rank)

    def label(self, q: Query) -> str:
        return f"LoRA r={q.rank}, {targets_of(q).described} ({q.adapter_dtype.value})"

    def assumption(self, q: Query) -> str:
        targets = targets_of(q)
        names = ", ".join(dict.fromkeys(linear.short_name for linear in targets.linears))
        layers = sorted({linear.layers for linear in targets.linears})
        where = f"each of {layers[0]} layers" if len(layers) == 1 else "their layers"
        return (
            f"LoRA: r × (d_in + d_out) parameters per targeted map (A is r × d_in, B is d_out × r) on {names} in "
            f"{where} (targets: {targets.label}; lm_head and embeddings are never targeted, as in peft)."
        )

    def peft_config(self, q: Query) -> PeftConfig:
        from estimator.stores.peft_configs import lora_config

        return lora_config(peft_target_modules(targets_of(q), q.spec), q.rank)


class DoRA(Store):
    method = Method.dora

    def params(self, q: Query) -> int:
        return dora_params(targets_of(q), q.rank)

    def tensors(self, q: Query) -> tuple[int, ...]:
        """The LoRA's A and B and a magnitude vector (d_out) per adapted map and copy."""
        from estimator.memory.training import adapter_tensor_sizes

        return adapter_tensor_sizes(targets_of(q), q.rank, magnitudes=True)

    def label(self, q: Query) -> str:
        return f"DoRA r={q.rank}, {targets_of(q).described}"

    def assumption(self, q: Query) -> str:
        return "DoRA: the LoRA plus a magnitude vector of d_out per targeted map (peft's use_dora)."

    def peft_config(self, q: Query) -> PeftConfig | None:
        targets = targets_of(q)
        if not all(linear.module for linear in targets.linears):
            return None  # peft has no DoRA for fused expert tensors
        from estimator.stores.peft_configs import lora_config

        return lora_config(peft_target_modules(targets, q.spec), q.rank, dora=True)


def peft_target_modules(targets: Targets, spec: ModelSpec) -> str | list[str]:
    """peft's ``target_modules`` for our targets: its own "all-linear", or module-path suffixes (also for
    all-linear where peft refuses a linear map it would find, Mamba's out_proj: it raises, not skips)."""
    if targets.label == "all-linear" and not peft_rules.peft_conventions(spec).all_linear_skips:
        return "all-linear"
    return list(dict.fromkeys(targets.module_names))


def ia3_targets(q: Query) -> tuple[Targets, frozenset[str], bool]:
    """IA3's targets, the feed-forward ones among them, and whether they are peft's own default.

    IA3 scales ``nn.Linear`` modules only (peft's conversion of fused experts is LoRA's alone).
    """
    spec = q.spec
    if q.ia3_targets is not None:
        given = resolve_targets(spec, q.ia3_targets, ExpertLayout.per_expert)
        modules = given.only(tuple(m for m in given.linears if m.module))
        return modules, peft_rules.IA3_FEEDFORWARD_NAMES, False
    maps = tuple(m for m in linear_maps(spec, q.experts) if m.module)
    default = peft_rules.ia3_default(spec)
    if default is not None:
        names, feedforward = default
        chosen = tuple(m for m in maps if m.short_name in names or m.name in names)
        return Targets(",".join(names), chosen, q.experts), frozenset(feedforward), True
    chosen = tuple(m for m in maps if m.roles & peft_rules.IA3_FALLBACK_ROLES and "router" not in m.roles)
    down = frozenset(m.short_name for m in chosen if m.roles == {"down"})
    return Targets("k,v,down", chosen, q.experts), down, False


class IA3(Store):
    method = Method.ia3

    def params(self, q: Query) -> int:
        targets, feedforward, _ = ia3_targets(q)
        return ia3_params(targets, feedforward)

    def label(self, q: Query) -> str:
        return "IA3"

    def assumption(self, q: Query) -> str:
        spec = q.spec
        targets, feedforward, peft_default = ia3_targets(q)
        names = ", ".join(dict.fromkeys(linear.short_name for linear in targets.linears))
        source = (
            f"peft's default for {spec.model_type}"
            if peft_default
            else "given by --ia3-targets"
            if q.ia3_targets
            else f"peft has no default for {spec.model_type}: keys, values and down projection, as the IA3 paper"
        )
        ff = ", ".join(sorted(feedforward & {linear.short_name for linear in targets.linears})) or "none"
        return (
            f"IA3: one learned vector per targeted map, of d_out, or of d_in for feed-forward maps ({ff}); "
            f"targets {names} ({source})."
        )

    def peft_config(self, q: Query) -> PeftConfig:
        targets, feedforward, peft_default = ia3_targets(q)
        names = None if peft_default else list(dict.fromkeys(m.short_name for m in targets.linears))
        from estimator.stores.peft_configs import ia3_config

        return ia3_config(names, sorted(feedforward))


class LoReFTStore(Store):
    method = Method.loreft

    def params(self, q: Query) -> int:
        return loreft_params(q.spec, q.loreft)

    def label(self, q: Query) -> str:
        return f"LoReFT r={q.loreft.rank}"

    def assumption(self, q: Query) -> str:
        return (
            f"LoReFT: 2 · r · d + r parameters per intervention (R and W are r × d, b has r), "
            f"{q.loreft.describe(q.spec)} (defaults: the paper's commonsense recipe)."
        )


def prefix_params(spec: ModelSpec, virtual_tokens: int, kv: KVFormat) -> int:
    """Prefix tuning: the KV cache of n virtual tokens, stored as parameters: n · Σ_g |g| · (values per row).

    Standard attention: n · 2 · L · K · d_h (Llama 3 70B, n = 20: 20 · 2 · 80 · 8 · 128 = 3,276,800).
    Multi-head latent attention: per token the same vectors as the cache (latent or expanded).
    """
    return virtual_tokens * sum(group.layers * group.mixer.prefix_values(kv) for group in layout_of(spec).groups)


def prompt_params(spec: ModelSpec, virtual_tokens: int) -> int:
    """Prompt tuning: n virtual token embeddings of d = hidden_size (Llama 3 70B, n = 20: 163,840)."""
    return virtual_tokens * spec.hidden_size


class Prefix(Store):
    method = Method.prefix

    def params(self, q: Query) -> int:
        count = prefix_params(q.spec, q.virtual_tokens, q.kv)
        if count == 0:  # a pure state-space model: no layer has keys and values to prepend to
            raise MethodNotApplicableError(
                f"prefix tuning prepends keys and values to attention layers; {q.spec.display_name} has none"
            )
        return count

    def label(self, q: Query) -> str:
        return f"prefix tuning ({q.virtual_tokens} virtual tokens)"

    def assumption(self, q: Query) -> str:
        return (
            f"Prefix tuning: the KV cache of {q.virtual_tokens} virtual tokens held as parameters, in the form of "
            "the cache row (no reparametrisation MLP)."
        )

    def peft_config(self, q: Query) -> PeftConfig:
        from estimator.stores.peft_configs import virtual_tokens_config

        return virtual_tokens_config("PrefixTuningConfig", q.virtual_tokens)


class Prompt(Store):
    method = Method.prompt

    def params(self, q: Query) -> int:
        return prompt_params(q.spec, q.virtual_tokens)

    def label(self, q: Query) -> str:
        return f"prompt tuning ({q.virtual_tokens} virtual tokens)"

    def assumption(self, q: Query) -> str:
        return f"Prompt tuning: {q.virtual_tokens} virtual token embeddings of hidden_size ({q.spec.hidden_size:,})."

    def peft_config(self, q: Query) -> PeftConfig:
        from estimator.stores.peft_configs import virtual_tokens_config

        return virtual_tokens_config("PromptTuningConfig", q.virtual_tokens)


class Full(Store):
    method = Method.full

    def params(self, q: Query) -> int:
        return q.counted_params  # --part: the language model, or the whole checkpoint

    def tensors(self, q: Query) -> tuple[int, ...]:
        """Every parameter tensor (experts as transformers builds them under --experts), and with --part all each
        part outside the language model as one tensor; they sum to :meth:`params`."""
        from estimator.memory.training import full_tensor_sizes

        outside = q.whole_model[1] if q.part == "all" else {}
        return (*full_tensor_sizes(q.spec, q.experts.fused_weights), *outside.values())

    def label(self, q: Query) -> str:
        return "full fine-tuning"

    def assumption(self, q: Query) -> str:
        return f"Full fine-tuning: all {q.counted_params:,} parameters stored again."


class Pretraining(Store):
    method = Method.pretraining
    trained: ClassVar[bool] = False

    def params(self, q: Query) -> int:
        return q.counted_params

    def size(self, q: Query, kv_bytes: int) -> Size | None:
        """All weights (of the part counted, --part) over all pretraining tokens; no row without a token count."""
        tokens = q.pretraining_tokens_or_published
        if tokens is None:
            return None
        return Size(q.counted_params, bits_to_bytes(q.counted_params * q.weights_dtype.bits), tokens)

    def label(self, q: Query) -> str:
        tokens = format_tokens_short(q.pretraining_tokens_or_published or 0)
        return f"pretraining ({tokens} tok, {q.weights_dtype.value})"

    def assumption(self, q: Query) -> str:
        spec, tokens = q.spec, q.pretraining_tokens_or_published
        if tokens is None:
            return f"Pretraining: no published token count for {spec.display_name}; pass --pretraining-tokens."
        source = spec.pretraining_tokens_source if tokens == spec.pretraining_tokens else None
        total = bits_to_bytes(q.counted_params * q.weights_dtype.bits)
        return (
            f"Pretraining: all {q.counted_params:,} parameters in {q.weights_dtype.value} ({format_bytes(total)})"
            f" over {format_tokens_short(tokens)} tokens"
            + (f" (source: {source})." if source else " (given by --pretraining-tokens).")
        )
