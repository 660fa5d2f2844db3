"""Mining on a Ray cluster (``pip install "negsample[ray]"``).

- :func:`mine_distributed`: :func:`~negsample.mine` on arrays or ``.npy`` files, by query
  shards (every worker holds the whole index) or corpus shards (each worker holds a
  contiguous shard of the corpus); the output is that of one ``mine()`` call.
- :func:`mine_dataset_distributed`: :func:`~negsample.mine_dataset` on a cluster (what
  ``negsample mine --ray`` runs).
- :class:`ReplicatedIndex` and :class:`ShardedIndex`: the workers, to start once and
  reuse; a ShardedIndex is an :class:`~negsample.Index` any sampler can use.
- :func:`connect`: join a cluster (``"auto"``, ``"HOST:PORT"``, ``"local"``).

Ray is imported when one of these is called, never by ``import negsample``.
"""

from ._ray import connect
from .dataset import mine_dataset_distributed
from .index import ReplicatedIndex, ShardedIndex, shard_bounds
from .runner import mine_distributed

__all__ = [
    "ReplicatedIndex",
    "ShardedIndex",
    "connect",
    "mine_dataset_distributed",
    "mine_distributed",
    "shard_bounds",
]
