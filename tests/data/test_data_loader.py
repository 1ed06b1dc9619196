"""DataLoader: batching, drop_last, reproducible shuffling, per-epoch reshuffle and exact resume."""
import numpy as np
import pytest

from tinyinception.data import ArrayDataset, Compose, DataLoader, RandomCrop, RandomHorizontalFlip


def _dataset(count=23):
    data = np.arange(count * 2 * 4 * 4, dtype=np.float32).reshape(count, 2, 4, 4) / (count * 32)
    return ArrayDataset(data, np.arange(count) % 5, [f"c{i}" for i in range(5)])


def _run(loader, batches=None):
    """(images, labels) of every batch of one iteration, or of the first ``batches`` batches."""
    out = []
    for images, labels in loader:
        out.append((images.copy(), labels.copy()))
        if batches is not None and len(out) == batches:
            break
    return out


def test_batches_in_order_and_last_partial():
    ds = _dataset(23)
    loader = DataLoader(ds, batch_size=5)
    batches = _run(loader)
    assert len(loader) == 5 and [len(labels) for _, labels in batches] == [5, 5, 5, 5, 3]
    images = np.concatenate([images for images, _ in batches])
    np.testing.assert_array_equal(images, ds.images)
    assert images.dtype == np.float32 and batches[0][1].dtype == np.int64


def test_drop_last():
    loader = DataLoader(_dataset(23), batch_size=5, drop_last=True)
    assert len(loader) == 4 and [len(labels) for _, labels in _run(loader)] == [5, 5, 5, 5]
    assert len(DataLoader(_dataset(20), batch_size=5, drop_last=True)) == 4
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        DataLoader(_dataset(), batch_size=0)


def test_shuffle_is_a_permutation_reproducible_and_new_each_epoch():
    ds = _dataset(23)
    first, same = DataLoader(ds, 4, shuffle=True, seed=7), DataLoader(ds, 4, shuffle=True, seed=7)
    epoch0 = np.concatenate([labels for _, labels in _run(first)])
    order0 = first.epoch_order(0)
    assert sorted(order0.tolist()) == list(range(23)) and not np.array_equal(order0, np.arange(23))
    np.testing.assert_array_equal(epoch0, ds.labels[order0])
    assert first.epoch == 1
    np.testing.assert_array_equal(np.concatenate([labels for _, labels in _run(same)]), epoch0)
    assert not np.array_equal(first.epoch_order(1), order0)
    assert not np.array_equal(DataLoader(ds, 4, shuffle=True, seed=8).epoch_order(0), order0)
    first.set_epoch(0)
    np.testing.assert_array_equal(np.concatenate([labels for _, labels in _run(first)]), epoch0)


def test_state_restore_continues_exactly_mid_epoch():
    ds = _dataset(23)
    transform = Compose([RandomCrop(4, padding=1), RandomHorizontalFlip()])
    reference = DataLoader(ds, 4, shuffle=True, seed=None, transform=transform)
    full = _run(reference) + _run(reference)                           # two whole epochs: 12 batches

    resumed = DataLoader(ds, 4, shuffle=True, seed=reference.seed, transform=transform)
    assert len(_run(resumed)) == 6
    head = _run(resumed, batches=2)                                    # stop two batches into epoch 1
    state = resumed.state_dict()
    assert state == {"seed": reference.seed, "epoch": 1, "batch": 2}

    fresh = DataLoader(ds, 4, shuffle=True, seed=123, transform=transform)
    fresh.load_state_dict(state)
    tail = _run(fresh)
    assert fresh.epoch == 2 and fresh.batch == 0
    for (images, labels), (expected_images, expected_labels) in zip(head + tail, full[6:]):
        np.testing.assert_array_equal(images, expected_images)
        np.testing.assert_array_equal(labels, expected_labels)
    with pytest.raises(KeyError, match="lacks"):
        fresh.load_state_dict({"seed": 1})


def test_plain_sequence_dataset_without_get_batch():
    items = [(np.full((1, 2, 2), i, dtype=np.float32), i % 3) for i in range(7)]
    batches = _run(DataLoader(items, batch_size=3))
    assert [images.shape for images, _ in batches] == [(3, 1, 2, 2), (3, 1, 2, 2), (1, 1, 2, 2)]
    np.testing.assert_array_equal(batches[1][1], [0, 1, 2])
    assert batches[1][1].dtype == np.int64


def test_array_dataset_keeps_float64_and_checks_inputs():
    data = np.random.default_rng(0).random((4, 1, 2, 2))
    ds = ArrayDataset(data, np.array([0, 1, 0, 1]), ["a", "b"])
    images, labels = next(iter(DataLoader(ds, batch_size=4)))
    assert images.dtype == np.float64 and labels.dtype == np.int64
    np.testing.assert_array_equal(images, data)
    with pytest.raises(ValueError, match=r"targets must be \(4,\)"):
        ArrayDataset(data, np.zeros(3, np.int64), ["a"])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        ArrayDataset(data, np.array([0, 1, 2, 0]), ["a", "b"])
    with pytest.raises(TypeError, match="uint8 .* or float"):
        ArrayDataset(data.astype(np.int32), np.zeros(4, np.int64), ["a"])
    with pytest.raises(ValueError, match=r"data must be \(N, C, H, W\)"):
        ArrayDataset(data[0], np.zeros(1, np.int64), ["a"])
