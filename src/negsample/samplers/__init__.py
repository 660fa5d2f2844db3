"""Samplers: the protocol, the shared base, and one module per sampler."""

from .base import BaseSampler, Sampler, SamplerBatch
from .random import RandomSampler
from .registry import available_samplers, get_sampler, register, sampler_from_string
from .resa2 import ReSa2Sampler
from .simans import SimANSSampler
from .topk import TopKSampler
from .trisampler import TriSampler

__all__ = [
    "BaseSampler",
    "RandomSampler",
    "ReSa2Sampler",
    "Sampler",
    "SamplerBatch",
    "SimANSSampler",
    "TopKSampler",
    "TriSampler",
    "available_samplers",
    "get_sampler",
    "register",
    "sampler_from_string",
]
