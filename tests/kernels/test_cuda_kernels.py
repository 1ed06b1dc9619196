"""CUDA kernels: every source compiles with nvcc (no GPU needed); CuPy matches NumPy on a GPU."""
import shutil
import subprocess

import numpy as np
import pytest

from kernel_testing import DTYPES, assert_close, random_array
from tinyinception.backend import gpu_available
from tinyinception.kernels import (avg_pool2d_backward, avg_pool2d_forward, batch_norm_backward,
                                   batch_norm_relu_backward, batch_norm_relu_train_forward,
                                   batch_norm_train_forward, col2im, im2col, max_pool2d_backward,
                                   max_pool2d_forward)
from tinyinception.kernels.batchnorm import (batch_norm_backward_numpy,
                                             batch_norm_relu_backward_numpy,
                                             batch_norm_relu_train_forward_numpy,
                                             batch_norm_train_forward_numpy)
from tinyinception.kernels.cuda_sources import all_cuda_sources
from tinyinception.kernels.im2col import col2im_numpy, im2col_numpy
from tinyinception.kernels.pooling import (avg_pool2d_backward_numpy, avg_pool2d_forward_numpy,
                                           max_pool2d_backward_numpy, max_pool2d_forward_numpy)

NVCC = shutil.which("nvcc")
needs_gpu = pytest.mark.skipif(not gpu_available(), reason="needs a CUDA device")


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
@pytest.mark.parametrize("family", sorted(all_cuda_sources()))
def test_cuda_source_compiles_with_nvcc(family, tmp_path):
    source = all_cuda_sources()[family]
    source_file = tmp_path / f"{family}.cu"
    source_file.write_text(source)
    ptx_file = tmp_path / f"{family}.ptx"
    result = subprocess.run([NVCC, "-ptx", "-arch=sm_80", "-std=c++14", str(source_file),
                             "-o", str(ptx_file)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    ptx = ptx_file.read_text()
    for name in _kernel_names(source):
        assert f".entry {name}(" in ptx, f"{name} missing from the PTX of {family}"


def _kernel_names(source):
    names = []
    for line in source.splitlines():
        if line.startswith('extern "C" __global__ void '):
            names.append(line.split("void ", 1)[1].split("(", 1)[0])
    return names


def test_each_source_holds_float_and_double_kernels():
    for family, source in all_cuda_sources().items():
        names = _kernel_names(source)
        assert names and len(names) % 2 == 0, family
        assert {n.rsplit("_", 1)[1] for n in names} == {"float", "double"}, family


# ---- CuPy vs NumPy (skipped without a GPU) -------------------------------------------------
def _to_gpu(*arrays):
    import cupy

    return [None if a is None else cupy.asarray(a) for a in arrays]


def _to_cpu(array):
    return None if array is None else array.get()


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("window", [((3, 3), (1, 1), (1, 1), (1, 1)), ((1, 7), (1, 1), (0, 3), (1, 1)),
                                    ((3, 2), (2, 3), (1, 0), (2, 1))])
def test_cupy_im2col_col2im_match_numpy(window, dtype):
    kernel, stride, padding, dilation = window
    x = random_array(0, (2, 3, 9, 10), dtype)
    out_size = tuple((s + 2 * p - d * (k - 1) - 1) // st + 1
                     for s, k, st, p, d in zip(x.shape[2:], kernel, stride, padding, dilation))
    (x_gpu,) = _to_gpu(x)
    cols = im2col(x_gpu, kernel, stride, padding, dilation, out_size)
    np.testing.assert_array_equal(_to_cpu(cols), im2col_numpy(x, *window, out_size))
    grad_cols = random_array(1, cols.shape, dtype)
    (grad_cols_gpu,) = _to_gpu(grad_cols)
    assert_close(_to_cpu(col2im(grad_cols_gpu, x.shape, *window, out_size)),
                 col2im_numpy(grad_cols, x.shape, *window, out_size), dtype)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("window", [((3, 3), (2, 2), (0, 0), (4, 5)), ((3, 3), (1, 1), (1, 1), (9, 10)),
                                    ((1, 3), (1, 2), (0, 1), (9, 5)), ((3, 1), (2, 1), (1, 0), (5, 10))])
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_cupy_pooling_matches_numpy(window, dtype, count_include_pad):
    x = random_array(2, (2, 3, 9, 10), dtype)
    x[0, 0, 0, 0] = np.nan
    (x_gpu,) = _to_gpu(x)
    out, argmax = max_pool2d_forward(x_gpu, *window)
    expected_out, expected_argmax = max_pool2d_forward_numpy(x, *window)
    np.testing.assert_array_equal(_to_cpu(out), expected_out)
    np.testing.assert_array_equal(_to_cpu(argmax), expected_argmax)
    grad_out = random_array(3, expected_out.shape, dtype)
    (grad_out_gpu,) = _to_gpu(grad_out)
    assert_close(_to_cpu(max_pool2d_backward(grad_out_gpu, argmax, x.shape)),
                 max_pool2d_backward_numpy(grad_out, expected_argmax, x.shape), dtype)
    x = np.nan_to_num(x)
    (x_gpu,) = _to_gpu(x)
    assert_close(_to_cpu(avg_pool2d_forward(x_gpu, *window, count_include_pad)),
                 avg_pool2d_forward_numpy(x, *window, count_include_pad), dtype)
    assert_close(_to_cpu(avg_pool2d_backward(grad_out_gpu, x.shape, *window, count_include_pad)),
                 avg_pool2d_backward_numpy(grad_out, x.shape, *window, count_include_pad), dtype)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu", [False, True])
def test_cupy_batch_norm_matches_numpy(dtype, relu):
    x = random_array(4, (4, 3, 5, 5), dtype)
    weight, bias = random_array(5, (3,), dtype), random_array(6, (3,), dtype)
    grad_y = random_array(7, x.shape, dtype)
    x_gpu, weight_gpu, bias_gpu, grad_y_gpu = _to_gpu(x, weight, bias, grad_y)
    if relu:
        forward, forward_numpy = batch_norm_relu_train_forward, batch_norm_relu_train_forward_numpy
    else:
        forward, forward_numpy = batch_norm_train_forward, batch_norm_train_forward_numpy
    outputs = forward(x_gpu, weight_gpu, bias_gpu, 1e-3)
    expected = forward_numpy(x, weight, bias, 1e-3)
    for got, want in zip(outputs, expected):
        assert_close(_to_cpu(got), want, dtype, scale=10)
    y, mean, _, inv_std = expected
    y_gpu, mean_gpu, inv_std_gpu = _to_gpu(y, mean, inv_std)
    if relu:
        grads = batch_norm_relu_backward(grad_y_gpu, y_gpu, x_gpu, mean_gpu, inv_std_gpu, weight_gpu)
        expected_grads = batch_norm_relu_backward_numpy(grad_y, y, x, mean, inv_std, weight)
    else:
        grads = batch_norm_backward(grad_y_gpu, x_gpu, mean_gpu, inv_std_gpu, weight_gpu)
        expected_grads = batch_norm_backward_numpy(grad_y, x, mean, inv_std, weight)
    for got, want in zip(grads, expected_grads):
        assert_close(_to_cpu(got), want, dtype, scale=10)
