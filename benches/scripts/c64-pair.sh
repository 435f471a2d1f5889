#!/bin/bash
# c64-pair.sh BIN ROUNDS SECS: traces on against traces off, both at once. Each round starts
# two c64-ab.sh cells side by side, one gateway with traces exported and one without, each
# with its own fake upstream and 32 clients (64 in all), the starting order alternating by
# round. Both share whatever the machine is doing in those seconds, so a slow spell of the
# host moves both, and their ratio measures what tracing costs. One after the other, cells
# of the same build spread ±20 % on a shared two-core VM (the fake upstream's own CPU per
# request moves with them), more than the effect being measured.
# CONC=64 gives each gateway 64 clients of its own (128 in all); CONC=1, one each, measures
# the added p50 the same way. ROUTE=paid and LOADGEN pass
# through to c64-ab.sh. Prints each round and the median ratios.
BIN=$1; ROUNDS=${2:-10}; SECS=${3:-8}; CONC=${CONC:-32}
HERE=$(dirname "$0")
W=$(mktemp -d /tmp/pair21.XXXX)
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 0 ]; then FIRST=on SECOND=off; else FIRST=off SECOND=on; fi
  bash "$HERE/c64-ab.sh" "$BIN" $FIRST "$SECS" $CONC > $W/$r.$FIRST 2>&1 &
  sleep 0.3
  bash "$HERE/c64-ab.sh" "$BIN" $SECOND "$SECS" $CONC > $W/$r.$SECOND 2>&1
  wait
  CELL='req/s=[0-9]*\( p50=[0-9.]*us\)\? ok=[0-9]* cpu/req=[0-9.]*us'
  echo "round $r  off: $(grep -o "$CELL" $W/$r.off)  on: $(grep -o "$CELL" $W/$r.on)"
  # A cell that printed no figures (its gateway did not start, say): show why.
  for m in off on; do grep -q "$CELL" $W/$r.$m || sed 's/^/    '$m' cell: /' $W/$r.$m | tail -5; done
done | tee $W/rounds
python3 - $W/rounds <<'P'
import re, statistics, sys
rate, cpu, p50 = [], [], []
for line in open(sys.argv[1]):
    r = [float(x) for x in re.findall(r"req/s=([0-9.]+)", line)]
    c = [float(x) for x in re.findall(r" cpu/req=([0-9.]+)", line)]
    p = [float(x) for x in re.findall(r" p50=([0-9.]+)us", line)]
    if len(r) == 2 and len(c) == 2 and r[0] > 0 and c[0] > 0:
        rate.append(r[1] / r[0]); cpu.append(c[1] / c[0])
        if len(p) == 2:
            p50.append(p[1] - p[0])
if rate:
    print(f"traced/untraced over {len(rate)} rounds: throughput median {statistics.median(rate) - 1:+.1%} "
          f"[{min(rate) - 1:+.1%} .. {max(rate) - 1:+.1%}], CPU per request median {statistics.median(cpu) - 1:+.1%}")
if p50:
    print(f"added p50 (traced minus untraced, the generator's): median {statistics.median(p50):+.1f} us "
          f"[{min(p50):+.1f} .. {max(p50):+.1f}]")
P
rm -rf $W
