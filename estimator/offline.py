"""Never the network: every switch that stops a library this tool imports from reaching the Hugging Face Hub or
fetching a kernel, set before any of them is imported.

- ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``: huggingface_hub refuses every request (``constants.HF_HUB_OFFLINE``);
  transformers and the ``kernels`` package download through it, so they are refused too.
- ``USE_HUB_KERNELS=0``: transformers' ``integrations/hub_kernels.py`` does not swap in Hub kernels.
- ``DISABLE_KERNEL_MAPPING=1``: the ``kernels`` package maps no layers to downloaded kernels.
- bitsandbytes' CPU backend (``backends/cpu/ops.py``) calls ``kernels.get_kernel(...)`` on import when the CPU
  has AVX512-BF16: it has no switch of its own; with the Hub offline the call fails and it falls back to its
  plain-torch code (the bytes it stores are the same).
- telemetry and update checks off (``HF_HUB_DISABLE_TELEMETRY``, ``DO_NOT_TRACK``, ``HF_HUB_DISABLE_UPDATE_CHECK``).
"""

from __future__ import annotations

import os
import sys

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    "DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "USE_HUB_KERNELS": "0",
    "DISABLE_KERNEL_MAPPING": "1",
}


def go_offline() -> None:
    """Set every switch in :data:`OFFLINE_ENV` in this process (and so its children); where huggingface_hub is
    already imported, switch its constant too (it reads the environment once, on import)."""
    os.environ.update(OFFLINE_ENV)
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]
