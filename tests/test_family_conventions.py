"""The model-type lists agree: ``ModelType``, ``MODULE_OF``, each family's model types and conventions, and the
indexes read before a family is known (GGUF architectures, aliases, multimodal wrappers). A family added to one
list and forgotten in another fails here, instead of giving another family's number or none."""

from __future__ import annotations

import subprocess
import sys
import typing

from estimator.checkpoint.gguf_file import MODEL_TYPES, WITH_EXPERTS
from estimator.families import ATTRIBUTE_MAPS, MODULE_OF, POST_INIT_ALIASES, WINDOWLESS, Family, all_families
from estimator.families.conventions import Conventions
from estimator.hf_config import ALIASES, TEXT_MODEL_TYPES
from estimator.memory.engines import FULL_ROTARY
from estimator.memory.gguf_quants import GGUF_FAMILIES, SEVENTY_B
from estimator.specs import ModelType
from estimator.stores.tuners_last import ADAPTION_PROMPT_FAMILIES


def declared() -> list[tuple[Family, str, Conventions]]:
    """(family, model type, its conventions) for every convention every family declares."""
    return [(f, t, c) for f in all_families() for t, c in f.conventions.items()]


def test_model_type_literal_names_the_family_map() -> None:
    assert set(typing.get_args(ModelType)) == set(MODULE_OF)


def test_every_family_module_covers_the_model_types_the_map_gives_it() -> None:
    owned = [(t, f) for f in all_families() for t in f.model_types]
    assert sorted(t for t, _ in owned) == sorted(MODULE_OF)  # each model type in exactly one family
    for model_type, family in owned:
        assert family.read.__module__ == f"estimator.families.{MODULE_OF[model_type]}", model_type


def test_conventions_are_declared_for_the_family_s_own_model_types() -> None:
    for family, model_type, conventions in declared():
        assert model_type in family.model_types, (model_type, family.model_types)
        module = family.read.__module__
        for rule in (conventions.peft.prefix, conventions.transformers.cached_kv_heads):
            assert rule is None or rule.__module__ == module, (model_type, rule)  # the family's own code


def test_the_gguf_index_is_what_the_families_declare() -> None:
    """general.architecture -> model type, as llama.cpp names each family (Mixtral: a llama with experts)."""
    named = {(c.gguf.architecture, t) for _, t, c in declared() if c.gguf is not None}
    assert named == set(MODEL_TYPES.items()) | set(WITH_EXPERTS.items())
    assert set(WITH_EXPERTS) <= set(MODEL_TYPES)


def test_the_alias_and_wrapper_indexes_are_what_the_families_declare() -> None:
    aliases = {alias: t for _, t, c in declared() for alias in c.aliases}
    wrappers = {wrapper: t for _, t, c in declared() for wrapper in c.wrappers}
    assert aliases == ALIASES
    assert wrappers == TEXT_MODEL_TYPES
    assert not (set(aliases) | set(wrappers)) & set(MODULE_OF)  # a name read as another is no family of its own


def test_other_model_type_tables_name_known_model_types() -> None:
    """Tables that stay keyed by model type (peft's, vLLM's and llama.cpp's own lists, the config readers') name
    only model types a family builds."""
    tables = {
        "ADAPTION_PROMPT_FAMILIES": set(ADAPTION_PROMPT_FAMILIES),
        "FULL_ROTARY": set(FULL_ROTARY),
        "GGUF_FAMILIES": set(GGUF_FAMILIES),
        "SEVENTY_B": set(SEVENTY_B),
        "WINDOWLESS": set(WINDOWLESS),
        "ATTRIBUTE_MAPS": set(ATTRIBUTE_MAPS),
        "POST_INIT_ALIASES": set(POST_INIT_ALIASES),
    }
    for name, types in tables.items():
        assert types <= set(MODULE_OF), (name, types - set(MODULE_OF))


def test_a_model_type_s_conventions_import_only_its_family() -> None:
    code = (
        "import sys\n"
        "from estimator.families import conventions_of\n"
        "assert conventions_of('llama').measured_activations and not conventions_of('phi3').peft.ia3\n"
        "print(*sorted(m for m in sys.modules if m.startswith('estimator.families.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["estimator.families.conventions", "estimator.families.dense"]
