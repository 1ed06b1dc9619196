"""``tinyinception predict``: a checkpoint from a short training run on a PNG and a JPEG; a local weight file with
the layout of a (test) published tag; user mistakes answered in one line with exit status 2."""
import numpy as np
import pytest
from PIL import Image

import tinyinception as ti
from tinyinception.cli import main
from tinyinception.data.image_folder import ImageFolder
from tinyinception.interop import to_torch_state_dict, write_safetensors
from tinyinception.interop.published import Preprocessing, PublishedWeights
from tinyinception.models import registry

TINY = ["--quick", "--train-size", "64", "--test-size", "32", "--batch-size", "32", "--no-progress"]


@pytest.fixture(autouse=True)
def _numpy_kernels():
    with ti.using_kernels("numpy"):
        yield


def _save_shapes(tmp_path):
    """Two Shapes10 test images, upscaled to 64x64: one PNG, one JPEG."""
    images, _ = ti.data.Shapes10("test", size=2, seed=3).get_batch(np.arange(2))
    paths = []
    for image, suffix in zip(images, (".png", ".jpg")):
        pixels = np.round(np.clip(image.transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)
        path = tmp_path / f"shape{suffix}"
        Image.fromarray(pixels).resize((64, 64), Image.NEAREST).save(path)
        paths.append(str(path))
    return paths


def _printed_top(out):
    """{image path: [(class name, probability), ...]} from predict's output."""
    table, current = {}, None
    for line in out.splitlines():
        if not line.startswith("  "):
            current = line.split("  (")[0]
            table[current] = []
        else:
            rank_name, probability = line.rsplit(" ", 1)
            table[current].append((rank_name.split(". ", 1)[1].strip(), float(probability)))
    return table


def test_predict_with_a_checkpoint_on_png_and_jpeg(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(run)]) == 0
    capsys.readouterr()
    paths = _save_shapes(tmp_path)
    assert main(["predict", *paths, "--checkpoint", str(run / "last.ckpt"), "--top", "3"]) == 0
    printed = _printed_top(capsys.readouterr().out)
    state = ti.train.load_checkpoint(run / "last.ckpt")
    model = ti.models.create(state["config"]["model"], **state["config"]["model_kwargs"])
    model.load_state_dict(state["model"])
    classes = state["config"]["classes"]
    batch = np.stack([ImageFolder._load(path, 3, (32, 32)) for path in paths])
    expected = ti.train.predict(model, batch)
    for path, label in zip(paths, expected):
        top = printed[path]
        assert len(top) == 3 and top[0][0] == classes[label]
        assert all(name in ti.data.SHAPE_CLASSES for name, _ in top)
        probabilities = [p for _, p in top]
        assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0001


def test_predict_with_a_local_file_of_a_published_layout(tmp_path, capsys, monkeypatch):
    model = ti.models.googlenet(width=0.125, small_input=True, num_classes=1000, aux_logits=False)
    weights = tmp_path / "small_googlenet.safetensors"
    write_safetensors(to_torch_state_dict(model), weights)
    record = PublishedWeights(model="googlenet", tag="small", source="test", url="https://example.invalid/w",
                              filename="w.safetensors", file_format="safetensors", num_classes=1000,
                              categories="imagenet", preprocessing=Preprocessing(32, 32, (0.5,) * 3, (0.5,) * 3),
                              model_kwargs={"aux_logits": False, "width": 0.125, "small_input": True})
    monkeypatch.setitem(registry._WEIGHTS, "googlenet", {"small": record})
    paths = _save_shapes(tmp_path)
    assert main(["predict", paths[0], "--model", "googlenet", "--weights", str(weights), "--like", "small"]) == 0
    top = _printed_top(capsys.readouterr().out)[paths[0]]
    batch = record.transforms()(paths[0])[None]
    model.eval()
    with ti.no_grad():
        logits = model(ti.tensor(batch)).data[0]
    assert top[0][0] == ti.data.imagenet_classes()[int(np.argmax(logits))] and len(top) == 5


@pytest.mark.parametrize("argv,message", [
    (["predict", "no-such.jpg", "--model", "googlenet", "--weights", "IMAGENET1K_V1"], "no image file no-such.jpg"),
    (["predict", "{image}", "--model", "googlenet", "--weights", "nonsense"],
     "'nonsense' is neither a published tag of googlenet"),
    (["predict", "{image}", "--model", "no_net", "--weights", "x"], "unknown model 'no_net'"),
    (["predict", "{image}"], "give --model NAME --weights"),
    (["predict", "{image}", "--checkpoint", "{image}"], "not a readable checkpoint"),
])
def test_predict_mistakes_are_one_line_with_status_2(tmp_path, capsys, argv, message):
    image = _save_shapes(tmp_path)[0]
    assert main([arg.format(image=image) for arg in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
