"""ShadowPEFT (peft 0.21's ``ShadowConfig``): a one-layer mirror of the decoder beside the model, and per decoder block
an injection bottleneck and two update MLPs, as peft builds and saves it.

Worked number: Llama 3 70B, r = 32: 982,807,552 trained parameters (see :meth:`Shadow.elements`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from estimator.errors import MethodNotApplicableError
from estimator.query.vocabulary import Method
from estimator.stores.peft_rules import peft_conventions
from estimator.stores.tuners import Elements, Knob, PeftTuner

if TYPE_CHECKING:
    from estimator.layout import LinearMap
    from estimator.query import Query
    from estimator.specs import ModelSpec
    from estimator.stores.peft_configs import PeftConfig


def shadow_backbone_params(spec: ModelSpec) -> int:
    """ShadowPEFT's mirror backbone: the base model's own decoder (no output head) cut to one layer (its first layer
    type), less ``embed_tokens``, which it shares with the base model (other embedding names are kept and trained).
    Llama 3 70B: one layer (q, o 8,192²; k, v 8,192 · 1,024; gate, up, down 8,192 · 28,672; two norms of 8,192) and
    the final norm: 150,994,944 + 704,643,072 + 16,384 + 8,192 = 855,662,592."""
    from estimator.architecture import other_tensors, param_breakdown
    from estimator.specs import validate_spec

    mirror, unshrunk = spec, peft_conventions(spec).shadow_unshrunk  # Nemotron-H: peft cannot cut its layer pattern
    if not unshrunk:
        fields = {**spec.to_dict(), "num_hidden_layers": 1}
        for key in ("layer_types", "mlp_layer_types"):
            if fields.get(key) is not None:
                fields[key] = list(fields[key])[:1]
        mirror = validate_spec(fields, spec.name, "report it: the one-layer mirror of a valid model")
    parts = param_breakdown(mirror)
    shared = 0 if unshrunk else sum(t.params for t in other_tensors(mirror) if t.name == "embed_tokens")
    return sum(parts.values()) - parts["lm_head"] - shared


class Shadow(PeftTuner):
    method = Method.shadow
    title, peft_kind = "ShadowPEFT", "ShadowConfig"
    formula = (
        "a mirror of the model's decoder cut to one layer (sharing the token embeddings), and per decoder block an "
        "injection bottleneck (d -> r -> d) and two update MLPs (d -> r -> d, with biases);"
    )

    def maps(self, q: Query) -> tuple[LinearMap, ...]:
        return ()  # whole decoder blocks, not linear maps: --targets does not apply

    def label(self, q: Query) -> str:
        return f"{self.title} r={q.rank}, every block ({q.adapter_dtype.value})"

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        """mirror + L · (2 r d + 2 · (2 d r + r + d)) (update_hidden_size = r, peft's default); saved = minimal =
        trained. Llama 3 70B, r = 32: 855,662,592 + 80 · (524,288 + 2 · 532,512) = 855,662,592 + 127,144,960 =
        982,807,552."""
        if (refused := peft_conventions(q.spec).shadow_refused) is not None:
            raise MethodNotApplicableError(f"ShadowPEFT on {q.spec.model_type}: {refused}")
        d, r = q.spec.hidden_size, q.rank
        n = shadow_backbone_params(q.spec) + q.spec.num_hidden_layers * (2 * r * d + 2 * (2 * d * r + r + d))
        return Elements(n, n, n)

    def peft_config(self, q: Query) -> PeftConfig:
        from estimator.stores.peft_configs import PeftConfig

        return PeftConfig(self.peft_kind, {"task_type": "CAUSAL_LM", "r": q.rank})
