"""Every kind of token mixer, declared once: a switch over kinds that must stay (rather than a question the
kind answers itself) matches on :data:`AnyMixer` and ends in ``assert_never``, so that a kind added here and
not there fails the type check (mypy), not a user's query."""

from __future__ import annotations

from estimator.layout.compressed import CompressedAttention
from estimator.layout.latent import LatentAttention
from estimator.layout.mixers import Attention
from estimator.layout.recurrent import NoMixer, Parallel, RecurrentState

AnyMixer = Attention | LatentAttention | CompressedAttention | RecurrentState | Parallel | NoMixer
KINDS: tuple[type, ...] = (Attention, LatentAttention, CompressedAttention, RecurrentState, Parallel, NoMixer)
