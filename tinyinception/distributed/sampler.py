"""Sharding a dataset over the ranks, like PyTorch's ``DistributedSampler``.

Epoch e, N examples, K ranks:

    order   = permutation of range(N) from SeedSequence([seed, e])     (the single-process DataLoader's order)
    padded  = order + order[:pad]          so that K divides its length (pad < K; only when ``pad``)
    rank r  = padded[r::K]                 each rank a disjoint shard, all shards the same length

Every rank draws the same permutation from the one seed, so no index travels over the network; every example is in
exactly one shard (the few padding repeats aside), and every rank takes the same number of steps. With K = 1 the
order is exactly the single-process DataLoader's.
"""
import numpy as np


class DistributedSampler:
    """The indices rank ``rank`` of ``num_replicas`` visits in each epoch.

    dataset_size: N (or a dataset: its ``len``). shuffle: a new order each epoch from (seed, epoch); otherwise
    0..N-1. pad: repeat the first indices so every rank gets ceil(N / K) (training); without it, the shards are
    N // K or N // K + 1 long and together hold each index exactly once (evaluation: nothing counted twice).
    """

    def __init__(self, dataset_size, num_replicas=1, rank=0, shuffle=True, seed=0, pad=True):
        self.dataset_size = dataset_size if isinstance(dataset_size, (int, np.integer)) else len(dataset_size)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        if self.num_replicas < 1 or not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in [0, num_replicas), got rank {rank} of "
                             f"{num_replicas}")
        self.shuffle, self.seed, self.pad = bool(shuffle), int(seed), bool(pad)

    @classmethod
    def for_world(cls, dataset, world, **options):
        """The sampler of this process's rank in ``world`` (a `tinyinception.distributed.World`)."""
        return cls(dataset, world.size, world.rank, **options)

    def __len__(self):
        if self.pad:
            return -(-self.dataset_size // self.num_replicas)
        return len(range(self.rank, self.dataset_size, self.num_replicas))

    def indices(self, epoch):
        """This rank's indices (len(self),) int64 for ``epoch``."""
        count = self.dataset_size
        if self.shuffle:
            order = np.random.default_rng(np.random.SeedSequence([self.seed, int(epoch)])).permutation(count)
        else:
            order = np.arange(count)
        if self.pad:
            missing = len(self) * self.num_replicas - count
            order = np.concatenate([order, np.resize(order, missing)]) if missing else order
        return order[self.rank::self.num_replicas].astype(np.int64)

    def __repr__(self):
        return (f"DistributedSampler(dataset_size={self.dataset_size}, rank={self.rank} of {self.num_replicas}, "
                f"shuffle={self.shuffle}, seed={self.seed}, pad={self.pad})")
