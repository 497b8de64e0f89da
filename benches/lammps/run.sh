#!/usr/bin/env bash
# Runs LAMMPS on in.lj (serial and -sf opt, one core) at 4,000, 32,000 and
# 256,000 atoms and prints atom-steps/s from its "Loop time" line.
# Needs Debian's lammps package: apt-get install lammps.
set -euo pipefail
cd "$(dirname "$0")"
for scale in 0.5 1 2; do
  for sf in "" "-sf opt"; do
    out=$(OMP_NUM_THREADS=1 lmp -in in.lj -var x $scale -var y $scale -var z $scale $sf -log none 2>&1)
    line=$(grep "Loop time" <<<"$out")
    atoms=$(awk '{print $(NF-1)}' <<<"$line")
    steps=$(awk '{print $(NF-4)}' <<<"$line")
    secs=$(awk '{print $4}' <<<"$line")
    mem=$(grep -m1 "Per MPI rank memory" <<<"$out" | awk '{print $(NF-1)}')
    printf 'lammps%s atoms=%s steps=%s loop_s=%s atom_steps_per_s=%.4g mem_MB=%s\n' \
      "${sf:+ $sf}" "$atoms" "$steps" "$secs" "$(echo "$atoms * $steps / $secs" | bc -l)" "$mem"
  done
done
