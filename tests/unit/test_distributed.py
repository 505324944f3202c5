"""The pieces of distributed training that need no process group: per-rank seeds and shards,
the global batch's split, torchrun's command line and its failure message, the CLI flags.
(The DDP runs themselves: tests/integration/test_ddp_*.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from gdgan.training import distributed as dd
from gdgan.training.launch import Launch, failure_message, torchrun_argv
from typer.testing import CliRunner


def test_single_process_is_untouched() -> None:
    idx = np.arange(10)
    assert dd.from_env() == dd.SINGLE or dd.from_env().world > 1
    assert dd.shard(idx, dd.SINGLE) is idx
    assert dd.local_batch(16, dd.SINGLE) == 16
    assert dd.rank_seed(123, 0) == 123  # rank 0 keeps the single-process stream


def test_shards_partition_the_split_and_seeds_differ_per_rank() -> None:
    idx = np.arange(101) * 3
    parts = [dd.shard(idx, dd.Dist(r, 4)) for r in range(4)]
    assert sorted(np.concatenate(parts).tolist()) == idx.tolist()
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1
    seeds = {dd.rank_seed(7, r) for r in range(4)} | {dd.rank_seed(7, r, step=50) for r in range(4)}
    assert len(seeds) == 8 and dd.rank_seed(7, 1) == dd.rank_seed(7, 1)  # distinct, reproducible


def test_the_global_batch_must_divide_by_the_world_size() -> None:
    assert dd.local_batch(16, dd.Dist(1, 4)) == 4
    with pytest.raises(dd.DistributedError, match="batch_size"):
        dd.local_batch(16, dd.Dist(0, 3))
    with pytest.raises(dd.DistributedError, match="3 training images"):
        dd.shard(np.arange(3), dd.Dist(3, 4))


def test_torchrun_command_lines() -> None:
    one = torchrun_argv(Launch(4), "gdgan.cli.main", ["train", "gdgan"])
    assert one[1:4] == ["-m", "torch.distributed.run", "--nproc-per-node=4"] and "--standalone" in one
    assert one[-4:] == ["-m", "gdgan.cli.main", "train", "gdgan"]
    multi = torchrun_argv(Launch(8, 2, "node0:29400", "run-1", 2), "m", [])
    assert {"--nnodes=2", "--rdzv-backend=c10d", "--rdzv-endpoint=node0:29400", "--rdzv-id=run-1"} <= set(
        multi
    )
    assert "--max-restarts=2" in multi and "--standalone" not in multi


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"nproc_per_node": 0}, "nproc_per_node"),
        ({"nnodes": 2}, "rdzv_endpoint"),
        ({"rdzv_endpoint": "x y"}, "rdzv_endpoint"),
    ],
)
def test_launch_rejects_bad_settings(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Launch(**kwargs)  # type: ignore[arg-type]


def test_failure_message_names_the_rank_and_signal() -> None:
    tail = (
        "Root Cause (first observed failure):\n[0]:\n"
        "  rank      : 1 (local_rank: 1)\n  exitcode  : -9 (pid: 42)\n"
    )
    msg = failure_message(1, tail, Launch(2))
    assert msg.startswith(
        "distributed training: rank 1 was killed by SIGKILL; no restart left (max_restarts=0)"
    )
    assert "resume" in failure_message(1, "", Launch(2))


def test_train_commands_offer_the_torchrun_flags() -> None:
    from gdgan.cli.main import app

    for kind in ("stage1", "stage2", "gdgan", "acgan"):
        out = CliRunner().invoke(app, ["train", kind, "--help"], env={"COLUMNS": "200"}).output
        assert all(f in out for f in ("--nproc-per-node", "--nnodes", "--rdzv-endpoint", "--max-restarts")), (
            kind
        )


def test_several_nodes_need_a_shared_run_id(tmp_path: object) -> None:
    from gdgan.cli.main import app

    res = CliRunner().invoke(
        app,
        ["train", "stage1", "--dataset", "x", "--nnodes", "2", "--rdzv-endpoint", "h:1"],
        env={"COLUMNS": "200"},
    )
    assert res.exit_code == 2 and "--resume" in res.output
