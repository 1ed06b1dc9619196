"""Every mistake on the command line: one line on stderr, exit status 2, no traceback; the message says what to do."""
import subprocess

import pytest

from conftest import PYTHON, child_environment

pytestmark = pytest.mark.usefixtures("numpy_kernels")


def _empty_folder_dataset(root):
    for split in ("train", "test"):
        (root / split / "circle").mkdir(parents=True)
    return root


CASES = [  # (argv after the subcommand's name, words the one-line message must hold)
    (["train", "--model", "googlnet"], ["unknown model 'googlnet'", "did you mean 'googlenet'"]),
    (["train", "--epochs", "0"], ["--epochs", "at least 1", "got 0"]),
    (["train", "--epochs", "-1"], ["--epochs", "at least 1", "got -1"]),
    (["train", "--batch-size", "0"], ["--batch-size", "at least 1"]),
    (["train", "--width", "0"], ["--width", "above 0"]),
    (["train", "--lr", "nan"], ["--lr", "above 0"]),
    (["train", "--epoch", "1"], ["unrecognized arguments: --epoch"]),
    (["train", "--label-smoothing", "1"], ["--label-smoothing", "below 1"]),
    (["eval", "--checkpoint", "{tmp}/missing.ckpt"], ["missing.ckpt", "no such checkpoint"]),
    (["summary", "inceptionv3"], ["unknown model 'inceptionv3'", "did you mean 'inception_v3'"]),
    (["summary", "googlenet", "--input-size", "3", "0", "32"], ["--input-size", "at least 1"]),
    (["summary", "inception_v4", "--input-size", "3", "8", "8", "--small-input"], ["--input-size 3x8x8"]),
]


@pytest.mark.parametrize("argv, words", CASES, ids=[" ".join(argv) for argv, _ in CASES])
def test_mistake_is_one_line_and_exit_status_2(cli, tmp_path, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    status, _, err = cli(*[a.format(tmp=tmp_path) for a in argv])
    assert status == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, (word, err)


def test_missing_resume_checkpoint_is_reported_before_any_data_is_made(cli, tmp_path, monkeypatch):
    import tinyinception.cli as cli_module

    def no_data(*args, **kwargs):
        raise AssertionError("the dataset was generated before the checkpoint was checked")
    monkeypatch.setattr(cli_module, "load_datasets", no_data)
    status, _, err = cli("train", "--resume", tmp_path / "nope.ckpt", "--out", tmp_path / "run")
    assert status == 2 and "nope.ckpt: no such checkpoint file" in err


def test_a_file_that_is_not_a_checkpoint(cli, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a checkpoint\n")
    for argv in (["train", "--resume", text, "--out", tmp_path / "run"], ["eval", "--checkpoint", text]):
        status, _, err = cli(*argv)
        assert status == 2 and "notes.txt is not a readable checkpoint" in err and len(err.splitlines()) == 1


def test_cifar10_without_download_names_the_flag(cli, tmp_path):
    status, _, err = cli("train", "--quick", "--dataset", "cifar10", "--data-dir", tmp_path / "data",
                         "--out", tmp_path / "run")
    assert status == 2 and "add --download" in err and "download=True" not in err


def test_empty_folder_dataset_does_not_suggest_download(cli, tmp_path):
    root = _empty_folder_dataset(tmp_path / "images")
    status, _, err = cli("train", "--quick", "--dataset", "folder", "--data-dir", root, "--out", tmp_path / "run")
    assert status == 2 and "ImageFolder" in err and "download" not in err


def test_folder_dataset_without_data_dir_does_not_suggest_download(cli, tmp_path):
    status, _, err = cli("train", "--quick", "--dataset", "folder", "--out", tmp_path / "run")
    assert status == 2 and "--data-dir" in err and "download" not in err


def test_models_prints_plain_text(cli):
    status, out, _ = cli("models")
    assert status == 0 and "googlenet" in out
    assert "`" not in out and ":func:" not in out


def test_summary_of_an_imagenet_sized_input_is_the_published_network(cli):
    status, out, _ = cli("summary", "inception_v4", "--input-size", "3", "299", "299")
    assert status == 0
    assert "1000 classes" in out and "ImageNet stem" in out
    assert "parameters: 42,679,816" in out            # the published Inception-v4: 42.7 M parameters
    assert "inception_b7" in out and "inception_b7.branch" not in out       # one row per block by default
    small = cli("summary", "googlenet", "--width", "0.125", "--input-size", "3", "32", "32")[1]
    assert "10 classes" in small and "32x32 stem" in small


def test_real_console_no_traceback_and_debug_shows_it(tmp_path):
    command = [PYTHON, "-m", "tinyinception", "train", "--model", "googlnet"]
    plain = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                           env=child_environment())
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.strip().splitlines() == ["tinyinception train: error: unknown model 'googlnet'; did you "
                                                 "mean 'googlenet'? `tinyinception models` lists them"]
    debug = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                           env=child_environment(TINYINCEPTION_DEBUG="1"))
    assert debug.returncode == 2 and "Traceback" in debug.stderr and "UsageError" in debug.stderr
