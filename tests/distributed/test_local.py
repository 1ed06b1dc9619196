"""Data-parallel pieces that need no MPI: the leaf gradient hook, sharding, buckets, and the world of one process."""
import numpy as np
import pytest

import tinyinception as ti
from tinyinception.distributed import DataParallel, DistributedSampler, SyncBatchNorm, World, make_buckets
from tinyinception.data import ArrayDataset, DataLoader


# --- the engine's post-accumulate-grad hook --------------------------------------------------------------------
def test_post_accumulate_hook_runs_once_after_every_contribution():
    w = ti.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.copy()))
    loss = (w * 3.0).sum() + (w * w).sum()           # two uses of w: the hook waits for both
    loss.backward()
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], [5.0, 7.0])


def test_post_accumulate_hook_sees_accumulated_gradient_and_can_be_removed():
    w = ti.tensor([1.0], requires_grad=True)
    seen = []
    handle = w.register_post_accumulate_grad_hook(lambda t: seen.append(float(t.grad[0])))
    (w * 2.0).sum().backward()
    (w * 2.0).sum().backward()                      # accumulates: the hook sees 4
    handle.remove()
    (w * 2.0).sum().backward()
    assert seen == [2.0, 4.0]


def test_post_accumulate_hook_fires_after_a_branch_without_gradient():
    w = ti.tensor([1.0, -1.0], requires_grad=True)
    calls = []
    w.register_post_accumulate_grad_hook(lambda t: calls.append(t.grad.copy()))
    (w.relu().sum() + (w * 0.5).sum()).backward()
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0], [1.5, 0.5])


def test_post_accumulate_hook_refuses_non_leaves():
    w = ti.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="only leaf tensors"):
        (w * 2.0).register_post_accumulate_grad_hook(lambda t: None)


# --- sharding --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("count", [1, 7, 48, 101])
@pytest.mark.parametrize("ranks", [1, 2, 3, 5])
def test_shards_cover_every_index_once_per_epoch(count, ranks):
    for epoch in range(3):
        shards = [DistributedSampler(count, ranks, r, seed=9).indices(epoch) for r in range(ranks)]
        assert len({len(s) for s in shards}) == 1            # every rank takes the same number of steps
        joined = np.concatenate(shards)
        assert set(joined.tolist()) == set(range(count))
        assert len(joined) - count == (-count) % ranks      # padding only to make the shards equal
        exact = np.concatenate([DistributedSampler(count, ranks, r, seed=9, pad=False).indices(epoch)
                                for r in range(ranks)])
        assert sorted(exact.tolist()) == list(range(count))


def test_shards_reshuffle_by_epoch_and_one_rank_matches_the_plain_loader():
    orders = [DistributedSampler(50, 2, 0, seed=4).indices(e) for e in range(2)]
    assert not np.array_equal(orders[0], orders[1])
    dataset = ArrayDataset(np.zeros((50, 1, 2, 2), np.float32), np.arange(50), [str(c) for c in range(50)])
    plain = DataLoader(dataset, 10, shuffle=True, seed=4)
    sharded = DataLoader(dataset, 10, seed=4, sampler=DistributedSampler(50, 1, 0, seed=4))
    assert [b[1].tolist() for b in plain] == [b[1].tolist() for b in sharded]


def test_loader_with_a_sampler_iterates_its_shard():
    dataset = ArrayDataset(np.zeros((10, 1, 2, 2), np.float32), np.arange(10), [str(c) for c in range(10)])
    loader = DataLoader(dataset, 2, sampler=DistributedSampler(10, 3, 2, shuffle=False))
    assert len(loader) == 2
    assert [b[1].tolist() for b in loader] == [[2, 5], [8, 1]]   # 2, 5, 8, then the padding repeats 1
    with pytest.raises(ValueError, match="exclude each other"):
        DataLoader(dataset, 2, shuffle=True, sampler=DistributedSampler(10))


def test_sampler_refuses_a_rank_outside_the_world():
    with pytest.raises(ValueError, match="rank must be in"):
        DistributedSampler(10, 2, 2)


# --- buckets and the world of one -----------------------------------------------------------------------------
def test_buckets_respect_the_cap_and_keep_the_order():
    params = [ti.nn.Parameter(np.zeros(n, np.float32)) for n in (10, 20, 5, 100, 3)]
    buckets = make_buckets(params, cap_bytes=30 * 4)
    assert [[p.numel() for p in b.parameters] for b in buckets] == [[10, 20], [5], [100], [3]]
    buckets = make_buckets(params, cap_bytes=30 * 4, first_cap_bytes=10 * 4)
    assert [[p.numel() for p in b.parameters] for b in buckets] == [[10], [20, 5], [100], [3]]


def test_world_of_one_process_without_mpi():
    world = World()
    assert (world.rank, world.size, world.is_main) == (0, 1, True)
    array = np.arange(3.0)
    assert world.allreduce(array) is array and array.tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(RuntimeError, match="stopping all ranks"):
        world.abort("a test")


def test_data_parallel_in_a_world_of_one_leaves_gradients_alone():
    model = ti.nn.Linear(3, 2)
    replica = DataParallel(model, World())
    x = ti.tensor(np.ones((4, 3), np.float32))
    replica(x).sum().backward()
    expected = model.weight.grad.copy()
    replica.synchronize()
    np.testing.assert_array_equal(model.weight.grad, expected)


def test_convert_sync_batchnorm_shares_state_and_equals_batchnorm_alone(rng):
    model = ti.nn.Sequential(ti.nn.Conv2d(2, 3, 1), ti.nn.BatchNorm2d(3))
    keys = list(model.state_dict())
    bn_weight = model[1].weight
    converted = SyncBatchNorm.convert_sync_batchnorm(model, World())
    assert isinstance(converted[1], SyncBatchNorm) and converted[1].weight is bn_weight
    assert list(converted.state_dict()) == keys
    x = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    plain = ti.nn.Sequential(ti.nn.Conv2d(2, 3, 1), ti.nn.BatchNorm2d(3))
    plain.load_state_dict(converted.state_dict())
    np.testing.assert_array_equal(converted(ti.tensor(x)).data, plain(ti.tensor(x)).data)


# --- what the launcher says in the environment ------------------------------------------------------------------
def test_local_rank_and_size_come_from_the_first_launcher_variable_set(monkeypatch):
    from tinyinception.distributed.training import local_rank, local_size

    for name in ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "PMIX_LOCAL_RANK", "SLURM_LOCALID",
                 "MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "PMIX_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE"):
        monkeypatch.delenv(name, raising=False)
    assert (local_rank(), local_size()) == (0, 1)  # nothing set: one process on this machine
    monkeypatch.setenv("SLURM_LOCALID", "3")
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "4")
    monkeypatch.setenv("MPI_LOCALNRANKS", "not a number")  # skipped: not a whole number
    assert (local_rank(), local_size()) == (3, 4)
    monkeypatch.setenv("MPI_LOCALRANKID", "1")  # MPICH's comes first
    assert local_rank() == 1
