"""Time data-parallel training steps: pycnn.distributed over N MPI ranks.

    mpiexec -n 1 python bench/bench_distributed.py [--threads T] [--steps 20]
    mpiexec -n 2 python bench/bench_distributed.py --threads 1 [--global-batch 64]
    mpiexec -n 2 python bench/bench_distributed.py --threads 1 --per-rank-batch 64

Each rank trains the bench networks (pycnn/_bench_model.py: digits, mnist7, resnet20) on
its share of a global batch (SGD with momentum, `DistributedDataParallel`). The global
batch is 64 unless --global-batch says otherwise, the same for any number of ranks
(strong scaling: the same training run, faster); --per-rank-batch B makes it B times the
number of ranks instead (weak scaling, how data-parallel throughput is usually quoted:
each rank keeps the batch it would train alone). Rank 0 prints per network the median
step time, the part of it spent averaging gradients (the Allreduce, waiting for the
other ranks included), the bytes each rank sends per step in a ring Allreduce, 2 (N - 1)
/ N times the gradients' size, and the throughput: images of the global batches trained
per second of wall time over the timed steps, which run back to back as in training (no
barrier between them). Compare runs with different -n side by side, on a quiet machine:
on one machine the ranks share its cores and memory bandwidth.
"""

import argparse
import time

import numpy as np

import pycnn
from pycnn import _bench_model as B
from pycnn import distributed as dist

GLOBAL_BATCH = 64  # the default


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="pycnn threads a rank")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--networks", default="digits,mnist7,resnet20")
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--global-batch", type=int, default=GLOBAL_BATCH)
    sizes.add_argument("--per-rank-batch", type=int, default=None)
    args = parser.parse_args()
    dist.init()
    rank, size = dist.rank(), dist.world_size()
    batch = args.global_batch if args.per_rank_batch is None else args.per_rank_batch * size
    if args.threads:
        pycnn.set_num_threads(args.threads)
    if rank == 0:
        print(
            f"{size} rank(s), {pycnn.get_num_threads()} pycnn thread(s) each, global batch "
            f"{batch}, float32, median of {args.steps} steps"
        )
        print(
            f"{'network':<10}{'step ms':>10}{'allreduce ms':>14}{'sent KiB/step':>15}"
            f"{'images/s':>15}"
        )
    for name in args.networks.split(","):
        shape, spec, _ = B.NETWORKS[name]
        module = B.build_pycnn(spec, np.float32, rng=0)
        # one rank trains the bare model: the baseline is a plain single-process loop
        model = dist.DistributedDataParallel(module) if size > 1 else module
        opt = pycnn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss = pycnn.CrossEntropyLoss()
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, *shape)).astype(np.float32)
        y = rng.integers(0, 10, batch)
        mine = slice(rank, None, size)
        steps, reduces = [], []
        for i in range(args.steps + 3):
            if i == 3:  # after the warm-up (plans, workspaces), the timed run starts
                dist.barrier()
                run_start = time.perf_counter()
            start = time.perf_counter()
            opt.zero_grad()
            loss(model(x[mine]), y[mine])
            module.backward(loss.backward(), input_grad=False)
            before = time.perf_counter()
            if size > 1:
                model.allreduce_gradients()
            after = time.perf_counter()
            opt.step()
            if i >= 3:
                steps.append(time.perf_counter() - start)
                reduces.append(after - before)
        dist.barrier()
        wall = time.perf_counter() - run_start
        grad_bytes = sum(p.size * p.dtype.itemsize for p in model.parameters())
        sent = 2 * (size - 1) / size * grad_bytes
        if rank == 0:
            print(
                f"{name:<10}{np.median(steps) * 1e3:>10.2f}{np.median(reduces) * 1e3:>14.2f}"
                f"{sent / 1024:>15.1f}{args.steps * batch / wall:>15.0f}"
            )


if __name__ == "__main__":
    main()
