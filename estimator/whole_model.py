"""The whole checkpoint behind a spec (``--part all``): the language model a family counts, plus the towers and
projector of its multimodal wrapper, read again from the config.json it came from
(:mod:`estimator.families.towers`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from estimator.architecture import total_params
from estimator.errors import EstimatorError
from estimator.families.towers import is_wrapper_language_model, outside_language_model, whole_model_params
from estimator.hf_config import read_config_json


def whole_model_of(spec: Any) -> tuple[int, dict[str, int], str]:
    """(parameters, the parts outside the language model, how counted) of the whole checkpoint of ``spec``.

    A text-only spec is its own whole model. The language model of a wrapper read from a config.json adds
    the parts :func:`whole_model_params` counts from that file (read again); a zoo entry or a GGUF file keeps
    the language model only, and is refused in one line (with the fix: ``--config`` the checkpoint's
    config.json)."""

    language = total_params(spec)
    if not is_wrapper_language_model(spec.notes):
        return language, {}, "whole model = language model"
    source = urlparse(spec.source)
    path = Path(unquote(source.path))
    if source.scheme != "file" or path.suffix != ".json" or not path.is_file():
        raise EstimatorError(
            f"{spec.display_name} is the language model of a multimodal checkpoint and its other parts are not "
            "known here; for --part all pass --config with the checkpoint's config.json, or use --part language"
        )
    config = read_config_json(path)
    whole, how = whole_model_params(config, path, language)
    parts = outside_language_model(config, path)
    return whole, parts if parts is not None else {"outside the language model (measured)": whole - language}, how
