#!/usr/bin/env bash
# microcosm at 1 and at 2 threads, alternated run by run, so that both see
# about the same host speed. Prints each round's 2-thread / 1-thread ratio
# of atom-steps/s, then their median (how benches/README.md quotes 2t / 1t:
# on this shared host a single criterion run of each drifts too much).
#   usage: benches/threads.sh CELLS STEPS ROUNDS
#   e.g.:  benches/threads.sh 10 3000 6    (4,000 atoms)
#          benches/threads.sh 20 300 6     (32,000 atoms)
#          benches/threads.sh 40 100 4     (256,000 atoms)
# Needs a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
cells=$1 steps=$2 rounds=$3
bin=target/release/microcosm
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for r in $(seq "$rounds"); do
  for t in 1 2; do
    $bin run md/lj-liquid --set run.steps="$steps" \
      --set "plugins.atoms.lattice.cells=[$cells,$cells,$cells]" --threads $t \
      --out "$tmp/r$r-$t" > /dev/null 2>&1
  done
done
python3 - "$tmp" "$rounds" <<'PY'
import json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
ratios = []
for r in range(1, rounds + 1):
    one, two = (json.load(open(f"{tmp}/r{r}-{t}/summary.json")) for t in (1, 2))
    a, b = one["entity_steps_per_second"], two["entity_steps_per_second"]
    ratios.append(b / a)
    print(f"atoms={one['entities']} 1t={a / 1e6:.2f}M 2t={b / 1e6:.2f}M ratio={b / a:.3f}")
print(f"median ratio {statistics.median(ratios):.3f}")
PY
