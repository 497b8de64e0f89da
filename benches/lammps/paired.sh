#!/usr/bin/env bash
# LAMMPS -sf opt and microcosm at the same time, one core each (swapping
# cores every round), so both see the same host speed. Prints
# microcosm's atom-steps/s over LAMMPS's per round.
#   usage: benches/lammps/paired.sh CELLS LAMMPS_STEPS OUR_STEPS ROUNDS
#   e.g.:  benches/lammps/paired.sh 20 200 600 4     (32,000 atoms)
# Needs Debian's lammps package and a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/../.."
cells=$1 lsteps=$2 osteps=$3 rounds=$4
bin=target/release/microcosm
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed 's/^run\t\t100$/run\t\t${n}/' benches/lammps/in.lj > "$tmp/in.lj"
scale=$(echo "$cells / 20" | bc -l)
for r in $(seq "$rounds"); do
  if [ $((r % 2)) = 1 ]; then ca=0 cb=1; else ca=1 cb=0; fi
  (cd "$tmp" && OMP_NUM_THREADS=1 taskset -c $ca lmp -in in.lj -var n "$lsteps" \
    -var x "$scale" -var y "$scale" -var z "$scale" -sf opt -log none > lmp.txt 2>&1) &
  taskset -c $cb $bin run md/lj-liquid --set run.steps="$osteps" \
    --set "plugins.atoms.lattice.cells=[$cells,$cells,$cells]" --threads 1 \
    --out "$tmp/run$r" > /dev/null 2>&1 &
  wait
  python3 - "$tmp/lmp.txt" "$tmp/run$r/summary.json" <<'PY'
import json, re, sys
t = open(sys.argv[1]).read()
m = re.search(r"Loop time of ([0-9.e+-]+) on .* for (\d+) steps with (\d+) atoms", t)
lmp = int(m.group(3)) * int(m.group(2)) / float(m.group(1))
ours = json.load(open(sys.argv[2]))["entity_steps_per_second"]
print(f"atoms={m.group(3)} lammps_opt={lmp / 1e6:.3f}M ours={ours / 1e6:.3f}M ratio={ours / lmp:.2f}")
PY
done
