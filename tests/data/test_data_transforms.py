"""Batch transforms against straightforward per-image loops and against PyTorch."""
import numpy as np
import pytest

from tinyinception.data import Compose, Normalize, RandomCrop, RandomHorizontalFlip, Resize


def _batch(shape=(6, 3, 8, 10), dtype=np.float32, seed=0):
    return np.random.default_rng(seed).random(shape).astype(dtype)


@pytest.mark.parametrize("padding, mode", [(0, "constant"), (2, "constant"), ((1, 3), "constant"),
                                           ((1, 2, 3, 0), "edge"), (2, "reflect")])
def test_random_crop_matches_a_loop(padding, mode):
    images = _batch()
    crop = RandomCrop((7, 9), padding=padding, padding_mode=mode, fill=0.25)
    out = crop(images, np.random.default_rng(11))
    left, top, right, bottom = crop.padding
    tops, lefts = crop.sample_offsets(np.random.default_rng(11), len(images),
                                      images.shape[2] + top + bottom, images.shape[3] + left + right)
    numpy_mode = {"constant": "constant", "edge": "edge", "reflect": "reflect"}[mode]
    extra = {"constant_values": 0.25} if mode == "constant" else {}
    for b in range(len(images)):
        padded = np.pad(images[b], ((0, 0), (top, bottom), (left, right)), mode=numpy_mode, **extra)
        expected = padded[:, tops[b]:tops[b] + 7, lefts[b]:lefts[b] + 9]
        np.testing.assert_array_equal(out[b], expected)
    assert out.shape == (6, 3, 7, 9) and out.dtype == np.float32


def test_random_crop_uses_many_offsets_and_checks_size():
    images = np.zeros((200, 1, 4, 4), dtype=np.float64)
    images[:, :, 0, 0] = 1.0                                       # a marker pixel shows where the window fell
    out = RandomCrop(4, padding=2)(images, np.random.default_rng(0))
    assert out.dtype == np.float64
    marker_positions = {tuple(np.argwhere(o[0] == 1.0)[0]) for o in out if (o == 1.0).any()}
    assert len(marker_positions) == 9                             # marker seen at every 3x3 offset it can be
    with pytest.raises(ValueError, match="RandomCrop: crop size"):
        RandomCrop(9)(np.zeros((1, 1, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"RandomCrop: expected images \(B, C, H, W\)"):
        RandomCrop(2)(np.zeros((4, 4), np.float32))


def test_random_horizontal_flip_matches_a_loop():
    images = _batch((50, 2, 3, 5))
    flip = RandomHorizontalFlip(p=0.5)
    out = flip(images, np.random.default_rng(4))
    chosen = flip.sample_flips(np.random.default_rng(4), len(images))
    assert 10 < chosen.sum() < 40
    for b in range(len(images)):
        expected = images[b][:, :, ::-1] if chosen[b] else images[b]
        np.testing.assert_array_equal(out[b], expected)
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0)(images), images)
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1.0)(images), images[..., ::-1])
    assert images.base is None or out.base is not images          # input left untouched


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalize_per_channel_keeps_dtype(dtype):
    images = _batch(dtype=dtype)
    out = Normalize([0.5, 0.25, 0.1], [0.2, 0.5, 2.0])(images)
    assert out.dtype == dtype
    for channel, (mean, std) in enumerate([(0.5, 0.2), (0.25, 0.5), (0.1, 2.0)]):
        np.testing.assert_allclose(out[:, channel], (images[:, channel] - mean) / std, rtol=1e-6)
    with pytest.raises(ValueError, match="Normalize: mean has 2 values but the images have 3 channels"):
        Normalize([0.1, 0.2], [1.0, 1.0])(images)
    with pytest.raises(ValueError, match="std must be non-zero"):
        Normalize(0.0, 0.0)


def test_compose_passes_the_generator_and_is_reproducible():
    images = _batch((16, 3, 8, 8))
    pipeline = Compose([RandomCrop(8, padding=2), RandomHorizontalFlip(), Normalize(0.5, 0.5),
                        lambda batch: batch * 2])
    first = pipeline(images, np.random.default_rng(3))
    second = pipeline(images, np.random.default_rng(3))
    third = pipeline(images, np.random.default_rng(4))
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, third)


def test_resize_identity_and_constant():
    images = _batch((2, 3, 5, 7), dtype=np.float64)
    np.testing.assert_allclose(Resize((5, 7))(images), images)
    constant = np.full((1, 1, 4, 4), 0.3, dtype=np.float32)
    out = Resize((9, 3))(constant)
    assert out.shape == (1, 1, 9, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, 0.3, rtol=1e-6)
    assert Resize(4).output_size(8, 12) == (4, 6)                # int: smaller edge, aspect kept
    assert Resize(4).output_size(12, 8) == (6, 4)


@pytest.mark.torch
@pytest.mark.parametrize("in_hw, out_hw", [((8, 10), (8, 10)), ((8, 10), (16, 20)), ((8, 10), (5, 3)),
                                           ((7, 9), (13, 4)), ((32, 32), (299 // 4, 299 // 4)), ((3, 3), (1, 1))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_resize_matches_torch_bilinear(in_hw, out_hw, dtype):
    torch = pytest.importorskip("torch")
    images = _batch((2, 3) + in_hw, dtype=dtype, seed=7)
    expected = torch.nn.functional.interpolate(torch.from_numpy(images), size=out_hw, mode="bilinear",
                                               align_corners=False).numpy()
    out = Resize(out_hw)(images)
    assert out.dtype == dtype
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, expected, rtol=tolerance, atol=tolerance)
