"""Every cache-shrinking method by its ``--kv-method`` name (see :mod:`estimator.frontier.base` for the fold).

Worked numbers for Llama 3.1 8B (bf16 cache 131,072 bytes per token): NVFP4 36,864; TurboQuant 3.5 bits 28,672;
CommVQ 1 bit 8,192; KVTC 20× 6,553.6; MHA2MLA d_kv 64 20,480; TransMLA 512 + 64 36,864; KVzip keep 0.3 of the
tokens 39,321.6 (at 100k tokens); a Cartridge of 2,048 tokens 268,435,456 bytes whatever the text's length.
"""

from __future__ import annotations

from estimator.frontier.base import KVMethod
from estimator.frontier.convert import MHA2MLA, TransMLA
from estimator.frontier.evict import DMS, RKV, CartridgeCache, KVzap, KVzip
from estimator.frontier.quantise import KVTC, NVFP4, CommVQ, TurboQuant

METHODS: dict[str, type[KVMethod]] = {
    cls.name: cls
    for cls in (NVFP4, TurboQuant, CommVQ, KVTC, MHA2MLA, TransMLA, KVzip, KVzap, DMS, RKV, CartridgeCache)
}

__all__ = ["METHODS", "KVMethod"]
