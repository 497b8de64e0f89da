"""Mesa peer for the agents sim (issue #5): Mesa agents on a grid with a
trivial rule and no inference, the baseline the issue quotes for ABM
frameworks. Each step every agent, in random order (`shuffle_do`), moves to a
random von Neumann neighbour of its cell (Mesa's idiom,
`cell.neighborhood.select_random_cell()`), on a non-toroidal W x H
`OrthogonalVonNeumannGrid` with unlimited cell capacity. Agents start on
uniformly random cells (Mesa's examples do; with every agent on one cell the
first step's list removals would be quadratic in N).

    pip install mesa
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 taskset -c 1 \
        python3 benches/peers/agents_mesa.py --agents 1000 --steps 100
    python3 benches/peers/agents_mesa.py --bytes 10000 100000   # RSS slope

Prints agent-steps/s = N * steps / loop seconds (model construction excluded).
"""
import argparse
import os
import resource
import statistics
import sys
import time

import mesa
from mesa.discrete_space import CellAgent, OrthogonalVonNeumannGrid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agents_numpy import rss_slope  # noqa: E402


class Walker(CellAgent):
    def __init__(self, model, cell):
        super().__init__(model)
        self.cell = cell

    def step(self):
        self.cell = self.cell.neighborhood.select_random_cell()


class Walk(mesa.Model):
    def __init__(self, n=1000, width=10, height=10, seed=0):
        super().__init__(seed=seed)
        self.grid = OrthogonalVonNeumannGrid((width, height), torus=False,
                                             capacity=None, random=self.random)
        cells = self.random.choices(self.grid.all_cells.cells, k=n)
        Walker.create_agents(self, n, cells)

    def step(self):
        self.agents.shuffle_do("step")


def run(n, steps, width, height, seed):
    model = Walk(n, width, height, seed)
    model.step()  # warm-up (cached neighbourhoods)
    t0 = time.perf_counter()
    for _ in range(steps):
        model.step()
    dt = time.perf_counter() - t0
    assert sum(len(c.agents) for c in model.grid.all_cells) == n
    return n * steps / dt, dt


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", "-n", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--width", type=int, default=10)
    ap.add_argument("--height", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bytes", type=int, nargs=2, metavar=("N1", "N2"),
                    help="bytes/agent as the peak-RSS slope between two N")
    args = ap.parse_args()
    if args.bytes:
        here = os.path.abspath(__file__)
        _, slope = rss_slope(lambda n: [here, "-n", str(n), "--steps", "5", "--repeats", "1",
                                        "--width", str(args.width), "--height", str(args.height)],
                             *args.bytes)
        print(f"mesa bytes_per_agent={slope:.1f} (peak-RSS slope N={args.bytes[0]}..{args.bytes[1]}, "
              f"{args.width}x{args.height} grid)")
        sys.exit(0)
    rates = []
    for i in range(args.repeats):
        rate, dt = run(args.agents, args.steps, args.width, args.height, args.seed + i)
        rates.append(rate)
        print(f"mesa {mesa.__version__} N={args.agents} {args.width}x{args.height} steps={args.steps} "
              f"run {i}: {dt:.3f} s, agent_steps_per_s={rate:.4g}")
    print(f"mesa N={args.agents} {args.width}x{args.height} median agent_steps_per_s={statistics.median(rates):.4g}")
    print(f"peak_rss_bytes={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}")
