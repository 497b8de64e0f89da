"""Writes maze.txt: a 201 × 101 map of 10 × 5 rooms (20 × 20 cells each)
joined by two-cell doors at seeded positions, with a goal `G` in the middle
of each room. Run: python3 assets/agents/make_maze.py (deterministic)."""
import random

W, H, ROOM = 201, 101, 20
rng = random.Random(5)
grid = [["." for _ in range(W)] for _ in range(H)]
for r in range(H):
    for c in range(W):
        if r % ROOM == 0 or c % ROOM == 0:
            grid[r][c] = "#"
# Doors: each interior wall segment between two rooms gets a 2-cell gap.
for rr in range(H // ROOM):
    for cc in range(1, W // ROOM):
        r = rr * ROOM + rng.randrange(2, ROOM - 3)
        for d in (0, 1):
            grid[r + d][cc * ROOM] = "."
for rr in range(1, H // ROOM):
    for cc in range(W // ROOM):
        c = cc * ROOM + rng.randrange(2, ROOM - 3)
        for d in (0, 1):
            grid[rr * ROOM][c + d] = "."
for rr in range(H // ROOM):
    for cc in range(W // ROOM):
        grid[rr * ROOM + ROOM // 2][cc * ROOM + ROOM // 2] = "G"
with open(__file__.replace("make_maze.py", "maze.txt"), "w") as f:
    f.write("\n".join("".join(row) for row in grid) + "\n")
