"""peft's other tuners (VeRA, LoKr, LoHa, FourierFT, VB-LoRA, TinyLoRA): trained, saved and minimal sizes.

Three independent references: hand arithmetic from Llama 3 70B's config.json (written out below), peft's
own trainable count on the meta device for every dense zoo family (a refusal must match peft's), and the
file ``save_pretrained`` writes for a tiny real twin.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from estimator.errors import EstimatorError, MethodNotApplicableError
from estimator.query import Query
from estimator.query.vocabulary import CORE, PEFT_TUNERS, Method, parse_methods
from estimator.stores import STORES
from estimator.zoo import load_all_specs, load_spec, validate_spec

# Llama 3 70B (config.json): hidden 8,192, intermediate 28,672, 64 heads, 8 KV heads of 128, 80 layers.
# Per layer: q, o 8,192 -> 8,192; k, v 8,192 -> 1,024; gate, up 8,192 -> 28,672; down 28,672 -> 8,192.
L, D, F, KV = 80, 8192, 28672, 1024
SUM_OUT = D + KV + KV + D + F + F + D  # 83,968 per layer
SUM_IN_OUT = (D + D) + (D + KV) * 2 + (D + D) + (D + F) * 3  # 161,792 per layer


def llama70(method: str, **options: Any) -> Query:
    return Query(load_spec("llama3-70b"), 100_000, 32, methods=method, tuner_options=tuple(options.items()))


def test_llama3_70b_by_hand() -> None:
    """Every tuner's three sizes on Llama 3 70B, all-linear, r = 32, from the config's widths."""
    vera = STORES[Method.vera].footprint(llama70("vera"))
    assert vera.params == L * (SUM_OUT + 7 * 32) == 6_735_360  # λ_b (d_out) and λ_d (r) per map
    assert vera.saved_params == 6_735_360 + 32 * F + F * 32 == 8_570_368  # shared A (r × max d_in), B
    assert vera.minimal_params == 6_735_360
    pvera = STORES[Method.pvera].footprint(llama70("pvera"))  # λ_d of 2r, A of 2r rows
    assert (pvera.params, pvera.saved_params) == (L * (SUM_OUT + 7 * 64), L * (SUM_OUT + 7 * 64) + 64 * F + F * 32)
    # LoKr: 8,192 = 64 · 128, 1,024 = 32 · 32, 28,672 = 128 · 224; W1 full, W2 low-rank (32 < 128 / 2, 224 / 2)
    q_map = 64 * 64 + 32 * (128 + 128)
    k_map = 32 * 64 + 32 * (32 + 128)
    gate_map = 128 * 64 + 32 * (224 + 128)
    down_map = 64 * 128 + 32 * (128 + 224)
    assert STORES[Method.lokr].params(llama70("lokr")) == L * (2 * q_map + 2 * k_map + 2 * gate_map + down_map)
    assert STORES[Method.lokr].params(llama70("lokr")) == 7_782_400
    assert STORES[Method.loha].params(llama70("loha")) == 2 * 32 * L * SUM_IN_OUT == 828_375_040
    assert STORES[Method.fourierft].params(llama70("fourierft")) == 1000 * 7 * L == 560_000
    vb = STORES[Method.vblora].footprint(llama70("vblora"))
    subvectors = 32 * L * SUM_IN_OUT // 256  # 1,617,920 sub-vectors of 256
    assert vb.params == vb.saved_params == 256 * 256 + subvectors * 256 == 414_253_056
    assert vb.minimal_params == 256 * 256 + subvectors * (2 - 1) + subvectors * 2  # bank, weights, indices
    assert vb.minimal_bytes == (256 * 256 + subvectors) * 2 + subvectors * 2 * 2 == 9_838_592  # int16 indices
    tiny = STORES[Method.tinylora].footprint(llama70("tinylora"))
    assert tiny.params == tiny.minimal_params == 7 * L * 64 == 35_840
    assert tiny.saved_params == 35_840 + 32 * L * SUM_IN_OUT + 7 * L * 64 * 32 * 32 == 450_923_520
    assert STORES[Method.tinylora].params(llama70("tinylora", weight_tying=1.0)) == 64  # one shared v


def test_llama3_70b_by_hand_rotations_sparse_and_relatives() -> None:
    """HRA, RoAd, OFT, BOFT, MiSS, GraLoRA, C3A, WaveFT, DeLoRA, SHiRA, RandLoRA, UniLoRA on Llama 3 70B, r = 32."""
    sum_in = L * (D * 6 + F)  # 6,225,920: d_in of q, k, v, o, gate, up (8,192) and down (28,672)
    sum_out = L * SUM_OUT  # 6,717,440
    lora = 32 * L * SUM_IN_OUT  # 414,187,520
    maps = 7 * L

    def trained(method: str) -> int:
        return STORES[Method(method)].params(llama70(method))

    assert trained("hra") == 32 * sum_in == 199_229_440
    assert trained("road") == 2 * (sum_out // 2) == 6_717_440  # θ and α of d_out / 2 (road_1)
    assert trained("oft") == sum_in // 32 * (32 * 31 // 2) == 96_501_760
    assert trained("boft") == 1 * sum_in * 4 + sum_out == 31_621_120
    assert trained("miss") == 32 * sum_out == 214_958_080
    assert trained("gralora") == lora
    assert trained("c3a") == L * (2 * D * D + 2 * D * KV + 3 * D * F) // 256 == 267_386_880
    assert trained("waveft") == 2592 * maps == 1_451_520
    delora = STORES[Method.delora].footprint(llama70("delora"))
    assert (delora.params, delora.saved_params, delora.minimal_params) == (
        lora + maps,
        lora + maps + sum_in,
        lora + maps,
    )
    shira = STORES[Method.shira].footprint(llama70("shira"))
    assert shira.params == lora and shira.saved_params == shira.minimal_params == 3 * lora
    assert shira.saved_bytes == lora * 2 + 2 * lora * 4  # bf16 entries, int32 (row, column) indices
    rand = STORES[Method.randlora].footprint(llama70("randlora"))
    big, small = 32 * 256 + 256 * D, 32 * 32 + 32 * KV  # n = ⌈min(d_in, d_out) / r⌉ bases: 256, 32
    assert rand.params == rand.minimal_params == L * (5 * big + 2 * small) == 847_544_320
    shared = 32 * F + F * (F // 32) * 32  # A (r × 28,672) and B (28,672 × 896 × r): 823,001,088
    assert rand.saved_params == rand.params + (maps + 1) * shared  # written once per name (see the twin below)
    assert trained("unilora") == 256
    assert trained("hira") == lora and trained("beft") == sum_out
    assert trained("adalora") == lora + 32 * maps  # P, Q and E of init_r = --rank
    assert trained("poly") == 4 * lora + 4 * maps  # four skills of rank r, four routing logits per map
    p_tuning = STORES[Method.p_tuning].footprint(llama70("p_tuning"))
    assert p_tuning.params == 20 * D + 3 * D * D + 3 * D == 201_515_008  # embeddings and the MLP d -> d -> d -> d
    assert p_tuning.saved_params == p_tuning.minimal_params == 20 * D  # the file keeps the output embeddings
    cartridge = STORES[Method.cartridge].footprint(llama70("cartridge"))
    per_token = 2 * L * 8 * 128  # a cache row: 163,840
    assert (cartridge.params, cartridge.saved_params) == (19 * per_token, 20 * per_token)  # one frozen, saved
    assert trained("ln_tuning") == 2 * L * D + D  # input_layernorm, post_attention_layernorm, norm
    assert trained("peanut") == 2 * 32 * sum_out and trained("deft") == lora
    sparse = STORES[Method.supertuning].footprint(llama70("supertuning"))  # 1% of each weight: ⌊d_in · d_out / 100⌋
    assert sparse.params == L * (2 * 671_088 + 2 * 83_886 + 3 * 2_348_810) == sparse.minimal_params
    assert sparse.saved_bytes == sparse.params * 2 + sparse.params * 4  # bf16 values and their int32 indices
    assert trained("psoft") == maps * (32 * 31 // 2 + 2 * 32)  # a skew r × r rotation and two vectors of r


def test_llama3_70b_by_hand_the_last_tuners() -> None:
    """GLoRA, Lily, OSF, FRoD, multitask prompt tuning, CPT, LLaMA-Adapter, trainable tokens and ShadowPEFT on
    Llama 3 70B; X-LoRA refused by name."""
    sum_in, sum_out, maps, lora = L * (D * 6 + F), L * SUM_OUT, 7 * L, 32 * L * SUM_IN_OUT
    glora = STORES[Method.glora].footprint(llama70("glora"))  # no biases: C, D and E are zeros, saved
    assert (
        (glora.params, glora.saved_params) == (2 * lora, 2 * lora + sum_in + 2 * sum_out) == (828_375_040, 848_035_840)
    )
    lily = STORES[Method.lily].footprint(llama70("lily"))  # one B of 2r × d_out per name across the 80 layers
    assert (lily.params, lily.saved_params) == (32 * sum_in + 2 * 32 * SUM_OUT + maps * 64, 629_181_440)
    assert lily.saved_params == 32 * sum_in + 2 * 32 * sum_out + maps * 32 * 2  # the file: each B under every map
    # OSF trains the lower half of each spectrum: (m − m/2)(d_in + d_out + 1), m = min(d_in, d_out)
    per_layer = 2 * 4096 * (2 * D + 1) + 2 * 512 * (D + KV + 1) + 3 * 4096 * (D + F + 1)
    assert STORES[Method.osf].params(llama70("osf")) == L * per_layer == 47_732_899_840
    frod = STORES[Method.frod].footprint(llama70("frod"))  # 1% of d_in² sparse values and a scale of d_in per map
    s_d, s_f = D * D // 100, F * F // 100  # 671,088 and 8,220,835 (⌊d² / 100⌋)
    assert frod.params == frod.minimal_params == L * (6 * (D + s_d) + F + s_f) == 986_014_960
    floats, longs = 6 * D * D + F * F, 2 * (6 * s_d + s_f) + 2 * 7  # a basis per kind of map; positions and sizes
    assert frod.saved_params == frod.params + floats + longs
    assert frod.saved_bytes == (frod.params + floats) * 2 + longs * 8
    assert STORES[Method.multitask_prompt_tuning].params(llama70("multitask_prompt_tuning")) == 20 * D + 20 + D
    assert STORES[Method.cpt].params(llama70("cpt")) == 20 * D
    assert STORES[Method.adaption_prompt].params(llama70("adaption_prompt")) == 30 * (20 * D + 1) == 4_915_230
    tokens = STORES[Method.trainable_tokens].footprint(llama70("trainable_tokens"))
    assert (tokens.params, tokens.saved_params) == (20 * D, 20 * D)  # untied: written once
    tied = STORES[Method.trainable_tokens].footprint(Query(load_spec("qwen3-0.6b"), methods="trainable_tokens"))
    assert (tied.params, tied.saved_params) == (20 * 1024, 2 * 20 * 1024)  # tied: the output layer's copy too
    # ShadowPEFT: a one-layer mirror of the decoder (no token embeddings, shared) and per block a d -> r -> d
    # injection and two update MLPs d -> r -> d with biases
    mirror = 2 * D * D + 2 * D * KV + 3 * D * F + 2 * D + D  # q, o; k, v; gate, up, down; two norms; final norm
    blocks = L * (2 * 32 * D + 2 * (D * 32 + 32 + 32 * D + D))
    assert STORES[Method.shadow].params(llama70("shadow")) == mirror + blocks == 982_807_552
    with pytest.raises(EstimatorError, match="X-LoRA is no way of storing text"):
        parse_methods("lora,xlora")
    with pytest.raises(EstimatorError, match="AdaMSS sizes its B factors by a KMeans clustering"):
        parse_methods("adamss")  # its count depends on the weights' singular vectors, not on config.json
    with pytest.raises(MethodNotApplicableError, match="knows only llama, mistral, gpt2"):
        STORES[Method.adaption_prompt].params(Query(load_spec("qwen3-0.6b"), methods="adaption_prompt"))


def test_crossover_line_names_the_chosen_tuners_without_lora() -> None:
    """With only tuners chosen, the crossover line gives each one's crossing with the cache (327,680 bytes a token
    in bf16): VeRA's 6,735,360 trained parameters at ⌈13,470,720 / 327,680⌉ = 42 tokens, TinyLoRA's 71,680 bytes
    at the first token; with LoRA among the rows, LoRA's own sentence (⌈828,375,040 / 327,680⌉ = 2,528)."""
    from estimator.compare import evaluate
    from estimator.present.words import crossover_line

    assert -(-6_735_360 * 2 // (2 * L * 8 * 128 * 2)) == 42
    line = crossover_line(evaluate(llama70("vera,tinylora")))
    assert (
        line == "Crossover with the KV cache (trained bytes; LoRA not chosen): VeRA at 42 tokens; TinyLoRA at 1 token."
    )
    assert "equals the KV cache at 2,528 tokens" in crossover_line(evaluate(llama70("lora,vera")))


def test_options_and_methods() -> None:
    assert parse_methods("all") == CORE and Method.vera not in CORE
    assert parse_methods("peft") == (Method.kv, *PEFT_TUNERS)
    assert STORES[Method.fourierft].params(llama70("fourierft", n_frequency=2000)) == 2000 * 560
    vb = STORES[Method.vblora].footprint(llama70("vblora", save_only_topk_weights=True))
    assert vb.saved_bytes == vb.minimal_bytes == 9_838_592
    for bad, message in (
        ("u=3", "sizes none of the chosen rows"),
        ("r=8", "--rank"),
        ("n_frequency=x", "whole number"),
        ("n_frequency=1,n_frequency=2", "twice"),
        ("bogus=1", "unknown tuner option"),
    ):
        with pytest.raises(EstimatorError, match=message):
            Query(load_spec("llama3-70b"), methods="fourierft,vera", tuner_options=bad)
    with pytest.raises(MethodNotApplicableError, match="exceeds the entries"):
        STORES[Method.fourierft].params(llama70("fourierft", n_frequency=10**9))


peft = pytest.importorskip("peft")
torch = pytest.importorskip("torch")
from estimator.validate import measure  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """One torch thread: the twins' SVDs (TinyLoRA, PSOFT, OSF, FRoD) are tiny, and several threads contending for
    busy cores made them ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def two_layers(spec: Any) -> Any:
    """The zoo model with its first two layers: every width and map as in the model, counts linear in layers
    (the full depth is checked by hand above), and peft's walk over the modules 16 to 40 times shorter."""
    fields = {**spec.to_dict(), "num_hidden_layers": 2}
    for key in ("layer_types", "mlp_layer_types"):
        if fields.get(key) is not None:
            fields[key] = list(fields[key])[:2]
    return validate_spec(fields, spec.name, "fix the test")


def zoo_families() -> dict[str, Any]:
    """One zoo model per model type (the first by name): every family the zoo holds."""
    families: dict[str, Any] = {}
    for spec in sorted(load_all_specs(), key=lambda s: s.name):
        families.setdefault(spec.model_type, spec)
    return families


FAMILIES = zoo_families()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_trained_parameters_equal_peft_on_the_meta_device(family: str) -> None:
    """peft builds each tuner on the meta-device model of every zoo family; its trainable count is the estimate, or
    both refuse (peft adapting nothing, as OSF on GPT-2's Conv1D, is its refusal). Mixture-of-experts families run
    with --experts none: transformers 5 builds fused expert tensors, which none of these tuners adapts."""
    spec = two_layers(FAMILIES[family])
    experts = "none" if spec.n_routed_experts is not None else "per-expert"
    base = measure.build_model(spec)  # once per family; each tuner adapts a copy
    for method in PEFT_TUNERS:
        q = Query(spec, 100_000, 32, methods=(method,), experts=experts)
        store = STORES[method]
        if not store.meta:  # peft reads values (BOFT's permutations, SHiRA's mask, FRoD's bases): the twin below
            continue
        try:
            expected: int | None = store.params(q)
        except MethodNotApplicableError:
            expected = None
        try:
            with measure._quiet(), torch.device("meta"):
                adapted = peft.get_peft_model(copy.deepcopy(base), measure.build_config(store.peft_config(q)))
            measured: int | None = sum(p.numel() for p in adapted.parameters() if p.requires_grad) or None
        except (ValueError, TypeError, NotImplementedError, AttributeError):  # AttributeError: Shadow on Mamba
            measured = None
        if (method, spec.model_type) == (Method.ln_tuning, "falcon"):  # refused: the layout lumps Falcon's norms
            assert expected is None and measured == (spec.num_hidden_layers + 1) * 2 * 4544  # input_layernorm, ln_f
            continue
        assert expected == measured, (family, method)


def test_lily_shares_across_layers_from_twenty_modules() -> None:
    """peft condenses all-linear's full paths to short names from 20 modules on, and Lily then shares each name's B
    across layers: a three-layer twin (21 modules) on the meta device, and the two-layer one (14) that shares none."""
    for layers in (2, 3):
        spec = validate_spec({**tiny_llama().to_dict(), "num_hidden_layers": layers}, "tiny", "fix the test")
        q = Query(spec, 64, 8, methods=("lily",))
        assert STORES[Method.lily].params(q) == measure.peft_trainable_params(spec, STORES[Method.lily].peft_config(q))
    per_map = 8 * (256 * 6 + 512) + 2 * 8 * (256 * 4 + 512 * 2 + 256) + 7 * 8 * 2  # A, B and routers, one layer
    assert STORES[Method.lily].params(Query(spec, 64, 8, methods=("lily",))) == per_map + 2 * (per_map - 16 * 2304)


def tiny_llama() -> Any:
    """A real Llama small enough to save: widths that every tuner's defaults divide (VB-LoRA's 256)."""
    fields = {**load_spec("llama3-70b").to_dict(), "num_hidden_layers": 2, "hidden_size": 256}
    fields.update(intermediate_size=512, num_attention_heads=4, num_key_value_heads=4, head_dim=64, vocab_size=256)
    return validate_spec({**fields, "name": "tiny-llama", "display_name": "tiny llama"}, "tiny-llama", "fix the test")


def saved_tensor_bytes(spec: Any, config: Any) -> tuple[int, int]:
    """peft's trainable count on a real fp32 model of ``spec``, and the bytes of the tensors it writes to
    adapter_model.safetensors (measured by peft and safetensors, as `estimate validate` measures them)."""
    from estimator.validate.adapter_checks import saved_tuner

    return saved_tuner(spec, config)


TWIN_OPTIONS: dict[Method, tuple[tuple[str, Any], ...]] = {Method.adaption_prompt: (("adapter_layers", 2),)}


@pytest.mark.parametrize(
    ("method", "options", "targets"),
    [(m, TWIN_OPTIONS.get(m, ()), "all-linear") for m in PEFT_TUNERS]
    + [
        (Method.vblora, (("save_only_topk_weights", True),), "all-linear"),
        (Method.vera, (("save_projection", False),), "all-linear"),
        (Method.tinylora, (("save_projection", False), ("weight_tying", 0.5)), "all-linear"),
        (Method.lily, (("stride_A", 2),), "q,k,v,o,gate,up,down"),  # named targets: A and B shared across layers
        (Method.lily, (("stride_A", 2),), "q,v,gate,up,down"),  # 10 modules: unshared under all-linear, here shared
        (Method.frod, (("save_projection", False),), "all-linear"),
    ],
)
def test_saved_file_of_a_tiny_twin(method: Method, options: tuple[tuple[str, Any], ...], targets: str) -> None:
    """peft's trainable count on the real twin, and the bytes of the saved file's tensors (fp32; indices at their
    own width) are the estimate's trained parameters and saved size."""
    q = Query(tiny_llama(), 64, 8, targets, methods=(method,), adapter_dtype="fp32", tuner_options=options)
    store = STORES[method]
    footprint = store.footprint(q)
    assert (footprint.params, footprint.saved_bytes) == saved_tensor_bytes(q.spec, store.peft_config(q))


def test_validate_checks_the_tuners_it_is_asked_for() -> None:
    """``estimate validate --methods ...`` measures each named tuner with peft; all agree exactly; none unasked."""
    from estimator.validate.adapter_checks import tuner_checks

    q = Query(load_spec("qwen3-0.6b"), 100_000, 32, methods="vera,boft,c3a")
    checks, notes = tuner_checks(q)
    assert [c.quantity.split(" ")[0].rstrip(",") for c in checks] == ["VeRA", "saved", "BOFT", "saved", "C3A"]
    assert all(c.status == "ok" for c in checks)
    assert notes == [notes[0]] and "c3a: not measured on the twin" in notes[0]  # the twin's widths: 64, 32
    assert tuner_checks(Query(load_spec("qwen3-0.6b"))) == ([], [])


def test_tuners_figure_draws_each_tuner_once_beside_the_cache() -> None:
    """Each applicable tuner is a line of its trained bytes over T, named once at the right edge: VeRA's
    13,470,720 bytes and TinyLoRA's 71,680 (by hand above) at 10⁹ tokens; the KV cache at 327,680 bytes a token."""
    pytest.importorskip("matplotlib")
    from estimator.compare import evaluate
    from estimator.plots.tuners import tuners_bytes_per_token

    fig = tuners_bytes_per_token(evaluate(llama70("lora")))
    ax = fig.axes[0]
    ends = {float(line.get_ydata()[-1]) for line in ax.get_lines() if float(line.get_xdata()[-1]) == 1e9}
    assert {2 * 6_735_360 / 1e9, 2 * 35_840 / 1e9, 2 * 414_187_520 / 1e9, 2 * L * 8 * 128 * 2} <= ends
    words = " ".join(t.get_text().replace("\n", " ") for t in ax.texts)
    named = [t for m in PEFT_TUNERS if (t := STORES[m].title) in words]  # type: ignore[attr-defined]
    assert len(named) == len(PEFT_TUNERS) and "TinyLoRA (71.68 kB)" in words and "UniLoRA (512 B)" in words
