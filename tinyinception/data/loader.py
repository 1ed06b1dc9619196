"""DataLoader: a dataset in batches of NumPy arrays, shuffled reproducibly and resumable mid-epoch.

Every random choice is a pure function of (seed, epoch, batch index):
    order of epoch e           = permutation from SeedSequence([seed, e])
    transform rng of batch b   = Generator(SeedSequence([seed, e, b]))
so the loader's whole state is three integers, ``state_dict() == {"seed", "epoch", "batch"}``, and a trainer
that saves it with a checkpoint and loads it back continues with exactly the batches it would have seen.
"""
import numpy as np

from .transforms import apply_transform


class DataLoader:
    """Iterate a dataset as (images, labels) batches.

    dataset: anything with ``len`` and ``ds[i] -> (image (C, H, W), label)``; if it has
        ``get_batch(indices) -> (images, labels)`` (every dataset in tinyinception.data does), whole batches are
        fetched at once.
    batch_size: examples per batch; the last batch may be smaller unless ``drop_last``.
    shuffle: a new random order every epoch, from (seed, epoch).
    seed: the seed of all randomness (order and transforms). None draws one from the OS, still saved in
        ``state_dict()`` so a run can be resumed.
    transform: applied to each batch of images, ``transform(images, rng)`` (see tinyinception.data.transforms).
    sampler: where the indices come from instead (``sampler.indices(epoch)`` and ``len(sampler)``), e.g. a
        ``ti.distributed.DistributedSampler`` giving each rank its shard; it does its own shuffling, so ``shuffle``
        must stay False (as in PyTorch). Transform draws then also depend on the sampler's rank.

    Yields images (B, C, H, W) float32 and labels (B,) int64. An epoch counts as done when its iteration runs to
    the end; then ``epoch`` goes up by one. Breaking out of a loop and iterating again restarts the same epoch.
    """

    def __init__(self, dataset, batch_size=64, shuffle=False, drop_last=False, seed=None, transform=None,
                 sampler=None):
        if int(batch_size) < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler and shuffle=True exclude each other (the sampler shuffles)")
        self.sampler = sampler
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.seed = int(np.random.SeedSequence().entropy) if seed is None else int(seed)
        self.epoch = 0
        self.batch = 0            # batches of the current epoch already handed out
        self._resume_batch = 0    # where the next iteration starts (set by load_state_dict)

    def __len__(self):
        """Number of batches per epoch."""
        count = len(self.dataset) if self.sampler is None else len(self.sampler)
        if self.drop_last:
            return count // self.batch_size
        return -(-count // self.batch_size)

    def set_epoch(self, epoch):
        """Start the next iteration at the beginning of ``epoch`` (its order depends on it)."""
        self.epoch, self.batch, self._resume_batch = int(epoch), 0, 0

    def state_dict(self):
        """The loader's whole random state: {"seed", "epoch", "batch"} (batch = batches done this epoch)."""
        return {"seed": self.seed, "epoch": self.epoch, "batch": self.batch}

    def load_state_dict(self, state):
        """Restore a ``state_dict()``: the next iteration continues with batch ``state["batch"]`` of its epoch."""
        missing = {"seed", "epoch", "batch"} - set(state)
        if missing:
            raise KeyError(f"DataLoader.load_state_dict: state lacks {sorted(missing)}; got keys {sorted(state)}")
        if not 0 <= int(state["batch"]) <= len(self):
            raise ValueError(f"DataLoader.load_state_dict: batch {state['batch']} is outside [0, {len(self)}]")
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])
        self.batch = self._resume_batch = int(state["batch"])

    def epoch_order(self, epoch=None):
        """Indices (N,) in the order epoch ``epoch`` (default: the current one) visits them."""
        epoch = self.epoch if epoch is None else epoch
        if self.sampler is not None:
            return self.sampler.indices(epoch)
        count = len(self.dataset)
        if not self.shuffle:
            return np.arange(count)
        return np.random.default_rng(np.random.SeedSequence([self.seed, epoch])).permutation(count)

    def batch_rng(self, batch_index, epoch=None):
        """The generator the transform of batch ``batch_index`` of ``epoch`` draws from."""
        epoch = self.epoch if epoch is None else epoch
        if self.sampler is not None and getattr(self.sampler, "num_replicas", 1) > 1:   # each rank its own draws
            return np.random.default_rng(np.random.SeedSequence([self.seed, epoch, batch_index, self.sampler.rank]))
        return np.random.default_rng(np.random.SeedSequence([self.seed, epoch, batch_index]))

    def _fetch(self, indices):
        """(images, labels) for an index array, by whole batch when the dataset can."""
        if hasattr(self.dataset, "get_batch"):
            images, labels = self.dataset.get_batch(indices)
        else:
            items = [self.dataset[int(i)] for i in indices]
            images = np.stack([np.asarray(image) for image, _ in items])
            labels = np.asarray([label for _, label in items], dtype=np.int64)
        return images, np.asarray(labels, dtype=np.int64)

    def __iter__(self):
        order = self.epoch_order()
        start, self._resume_batch = self._resume_batch, 0
        self.batch = start
        for batch_index in range(start, len(self)):
            indices = order[batch_index * self.batch_size:(batch_index + 1) * self.batch_size]
            images, labels = self._fetch(indices)
            if self.transform is not None:
                images = apply_transform(self.transform, images, self.batch_rng(batch_index))
            self.batch = batch_index + 1
            yield images, labels
        self.epoch += 1
        self.batch = 0

    def __repr__(self):
        return (f"DataLoader(dataset={self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, seed={self.seed}, epoch={self.epoch})")
