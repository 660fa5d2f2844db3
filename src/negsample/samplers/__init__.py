"""Samplers: the protocol, the shared base, and one module per sampler.

Everything a sampler written outside the package needs is public here: the
:class:`Sampler` protocol (what :func:`~negsample.mine` calls) and the :class:`BaseSampler`
template, the batch it receives (:class:`SamplerBatch`, :class:`Anchor`), the random
streams (:class:`Stream`) and the sampling helpers (:func:`gumbel_topk`,
:func:`first_true`, :func:`take_positions`).
"""

from .._rng import Stream
from .base import (
    Anchor,
    BaseSampler,
    Sampler,
    SamplerBatch,
    first_true,
    gumbel_topk,
    region_size_of,
    take_positions,
)
from .kernel import KernelSampler
from .random import RandomSampler
from .registry import available_samplers, get_sampler, register, sampler_from_string
from .resa2 import ReSa2Sampler
from .simans import SimANSSampler
from .topk import TopKSampler
from .trisampler import TriSampler

__all__ = [
    "Anchor",
    "BaseSampler",
    "KernelSampler",
    "RandomSampler",
    "ReSa2Sampler",
    "Sampler",
    "SamplerBatch",
    "SimANSSampler",
    "Stream",
    "TopKSampler",
    "TriSampler",
    "available_samplers",
    "first_true",
    "get_sampler",
    "gumbel_topk",
    "region_size_of",
    "register",
    "sampler_from_string",
    "take_positions",
]
