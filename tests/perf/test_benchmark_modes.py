"""The benchmark machinery for PyTorch's modes: channels_last programs compute what eager ones do, interleaved
timing reports every callable, and the best-mode ratio picks PyTorch's fastest mode."""
import numpy as np
import pytest

import tinyinception as ti
from benchmarks.common import Result
from benchmarks.inference import INFERENCE_CASES, inference_cases
from benchmarks.torch_modes import interleaved, mode_callable


def test_the_best_mode_ratio_uses_pytorchs_fastest_mode():
    result = Result("infer", "case", "eval", seconds={"numba": 2.0, "torch": 4.0, "torch_channels_last": 1.0})
    assert result.ratio() == 0.5 and result.ratio_to_best() == 2.0
    assert result.best_torch() == ("torch_channels_last", 1.0)
    assert Result("infer", "case", "eval", seconds={"numba": 1.0}).ratio_to_best() is None


def test_interleaved_times_every_callable_in_rounds():
    calls = []
    timed = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3, warmup=1)
    assert calls == ["a", "b"] + ["a", "b"] * 3
    assert set(timed) == {"a", "b"} and all(low <= median <= high for median, low, high in timed.values())


def test_the_inference_cases_are_the_native_resolutions_and_batch_one():
    assert INFERENCE_CASES["inception_v4"][1:] == (299, 8) and INFERENCE_CASES["inception_resnet_v1"][1:] == (160, 16)
    full, quick = inference_cases(False), inference_cases(True)
    assert len(full) == 12 and {batch for *_, batch in full} == {1, 8, 16}
    assert [c for c in quick if c[3] != 1] == [c for c in full if c[0] == "googlenet" and c[3] != 1]


@pytest.mark.torch
def test_a_channels_last_program_computes_what_the_eager_one_does():
    torch = pytest.importorskip("torch")
    from benchmarks.torch_mirror import TorchProgram
    ti.manual_seed(0)
    model = ti.nn.Sequential(ti.nn.Conv2d(3, 4, 3, padding=1), ti.nn.BatchNorm2d(4), ti.nn.ReLU()).eval()
    x = ti.Tensor(np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32))

    def body(run):
        def forward():
            with torch.no_grad():
                return run()[0]
        return forward
    outputs = {}
    for mode in ("eager", "channels_last"):
        program = TorchProgram.trace(lambda: model(x), torch)
        forward, compile_seconds = mode_callable(torch, program, mode, body)
        assert compile_seconds is None
        outputs[mode] = forward()
    assert outputs["channels_last"].is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(outputs["channels_last"].numpy(), outputs["eager"].numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.torch
def test_the_replay_drops_each_intermediate_after_its_last_use_and_still_matches():
    torch = pytest.importorskip("torch")
    from benchmarks.torch_mirror import TorchProgram
    ti.manual_seed(1)
    model = ti.nn.Sequential(ti.nn.Conv2d(3, 4, 3, padding=1), ti.nn.BatchNorm2d(4), ti.nn.ReLU(),
                             ti.nn.Conv2d(4, 2, 1)).eval()
    x = ti.Tensor(np.random.default_rng(2).standard_normal((2, 3, 5, 5)).astype(np.float32))
    program = TorchProgram.trace(lambda: model(x), torch)
    dropped = [key for keys in program.release for key in keys]
    assert len(dropped) == len(program.nodes) - 1  # every value but the output is dropped once read for the last time
    program.check(rtol=1e-5, atol=1e-6)


@pytest.mark.torch
@pytest.mark.parametrize("activation", [True, False])
def test_the_replay_of_an_inception_resnet_block_matches(activation):
    """The residual add, with and without its ReLU, replays in PyTorch as it ran here."""
    torch = pytest.importorskip("torch")
    from benchmarks.torch_mirror import TorchProgram
    from tinyinception.models.inception_resnet import InceptionResNetA
    ti.manual_seed(3)
    widths = {"branch_1x1": 4, "branch_3x3": (4, 4), "branch_3x3dbl": (4, 6, 8)}
    block = InceptionResNetA(8, widths, 0.17, activation=activation).eval()
    x = ti.Tensor(np.random.default_rng(3).standard_normal((2, 8, 5, 5)).astype(np.float32))
    program = TorchProgram.trace(lambda: block(x), torch)
    program.check(rtol=1e-5, atol=1e-5)
    assert (program.ours[0] >= 0).all() == activation
