"""Distinct weight values per layer and per output channel: how many bits a palette index needs.

    palette.layer(kernel, channel_axis=-1)   # {"weights", "distinct", "distinct_per_channel", "bits"}
    palette.summary({"conv1": palette.layer(k1, -1), ...})   # the layers, bits per weight, the widest channel

A clustered layer holds k distinct values (per output channel, where it was clustered per channel),
so each weight can be stored as an index of ceil(log2 k) bits into a table of k values per channel;
an int8 layer holds at most 256 per channel, 8 bits. ``bits`` is that index width, at most the
width the weights are stored in; the tables themselves are not counted.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.config import LAYERS


def index_bits(distinct: int, stored_bits: int) -> int:
    """Bits of an index into a table of ``distinct`` values, at most ``stored_bits`` (a lone value needs 1)."""
    return min(stored_bits, max(1, math.ceil(math.log2(max(distinct, 1)))))


def layer(kernel: np.ndarray, channel_axis: int) -> dict:
    """The distinct values of ``kernel`` in all and in its most varied output channel (``channel_axis``)."""
    channels = np.moveaxis(kernel, channel_axis, 0).reshape(kernel.shape[channel_axis], -1)
    per_channel = max(len(np.unique(row)) for row in channels)
    return {
        "weights": int(kernel.size),
        "distinct": len(np.unique(kernel)),
        "distinct_per_channel": int(per_channel),
        "bits": index_bits(per_channel, 8 * kernel.dtype.itemsize),
    }


def layer_name(tensor_name: str) -> str:
    """The model's layer name (``pipeline.config.LAYERS``) inside a converter's tensor name, else the name."""
    return next((name for name in LAYERS if name in tensor_name), tensor_name)


def summary(layers: dict[str, dict]) -> dict:
    """``layers`` with the weight-weighted mean index width and the most distinct values in any channel."""
    total = sum(x["weights"] for x in layers.values())
    bits = sum(x["bits"] * x["weights"] for x in layers.values()) / total if total else 0.0
    return {
        "bits_per_weight": round(bits, 3),
        "max_distinct_per_channel": max((x["distinct_per_channel"] for x in layers.values()), default=0),
        "layers": layers,
    }
