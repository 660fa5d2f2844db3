"""Mining on a Ray cluster (``pip install "negsample[ray]"``).

- :func:`mine_distributed`: :func:`~negsample.mine` on arrays or ``.npy`` files, by query
  shards (every worker holds the whole index) or corpus shards (each worker holds a
  contiguous shard of the corpus); the output is that of one ``mine()`` call.
- :func:`mine_dataset_distributed`: :func:`~negsample.mine_dataset` on a cluster (what
  ``negsample mine --ray`` runs).
- :class:`ReplicatedIndex` and :class:`ShardedIndex`: the workers, to start once and
  reuse; a ShardedIndex is an :class:`~negsample.Index` any sampler can use.
- :func:`connect`: join a cluster (``"auto"``, ``"HOST:PORT"``, ``"local"``).
- Ray Data stages (:mod:`.stages`): :func:`encode_ray` / :func:`encode_dataset_ray`
  (into the encoding cache), :class:`RayScorer` / :func:`score_pairs_ray` (teacher
  scores), :class:`RayJudge` / :func:`judge_items_ray` (judge labels, into the sqlite
  cache): ``map_batches`` over an actor pool.

Ray is imported when one of these is called, never by ``import negsample``.
"""

from ._ray import connect
from .dataset import mine_dataset_distributed
from .index import ReplicatedIndex, ShardedIndex, shard_bounds
from .runner import mine_distributed
from .stages import (
    RayJudge,
    RayScorer,
    encode_dataset_ray,
    encode_ray,
    judge_items_ray,
    score_pairs_ray,
)

__all__ = [
    "RayJudge",
    "RayScorer",
    "ReplicatedIndex",
    "ShardedIndex",
    "connect",
    "encode_dataset_ray",
    "encode_ray",
    "judge_items_ray",
    "mine_dataset_distributed",
    "mine_distributed",
    "score_pairs_ray",
    "shard_bounds",
]
