#!/bin/bash
# c64-ab.sh BIN MODE SECS [CONC]: one free-route cell, the way the traces figures in
# docs/benchmarks.md ("Traces at 64 clients (session 8)") were taken: `loadgen upstream` (the
# fake OpenAI upstream, its own process; it also accepts the OTLP posts), the gateway BIN on a
# SQLite file with the request log on and RUST_LOG=warn (RIG_LOG=info: the default level),
# traces exported when MODE is `on` (`off`: none), then `loadgen run` at CONC clients (64)
# for SECS seconds after a warm-up.
# Prints req/s and, per request, the gateway's CPU, context switches and minor faults
# (THR=1: per thread too), and the upstream's CPU (it is also the traces' collector).
# LOADGEN=path overrides `loadgen` beside BIN. ROUTE=paid: the paid route instead (a funded
# user's key, a priced model; every request held and settled); USERS=N with it: N funded
# users, their keys taken in turn (`loadgen run --keys-file`). LEDGER=1: after the run, the
# ledger's lease takes, returns and charges (how the paid route's leases behaved). PG=1: on a
# fresh PostgreSQL database (127.0.0.1:5432, dropped after) instead of a SQLite file. P99=1:
# print the generator's p99 beside its p50.
# Instructions per request: PRE="valgrind --tool=callgrind --callgrind-out-file=cg.%p.out
# --dump-instr=no" WARM=4000 MAXREQ="--max-requests 4000" c64-ab.sh BIN on 120: the counters
# are zeroed after the warm-up and dumped (cg.PID.out.1) after the 4,000 requests.
BIN=$1; MODE=$2; SECS=${3:-8}; CONC=${4:-64}
D=$(dirname $BIN)
LOADGEN=${LOADGEN:-$D/loadgen}
W=$(mktemp -d /tmp/rig21.XXXX)
mkfifo $W/in
$LOADGEN upstream < $W/in > $W/up.out 2>&1 &
UP_PID=$!
exec 3>$W/in
for i in $(seq 50); do [ -s $W/up.out ] && break; sleep 0.1; done
API=$(head -1 $W/up.out)
# Below the ephemeral range (32768 up), where the generators' and upstream's own sockets are.
PORT=$((20000 + RANDOM % 12000))
TEL=""
[ "$MODE" = on ] && TEL="telemetry:
  otlp_endpoint: \"${API%/v1}/otlp\""
DB_URL="sqlite://$W/db.sqlite"
if [ -n "$PG" ]; then
  PG_DB="rig_$$_$RANDOM"
  psql -h 127.0.0.1 -U postgres -d test -qc "CREATE DATABASE $PG_DB" || exit 1
  # Dropped however the cell ends (a gateway that never started exits early).
  trap 'psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS $PG_DB" >/dev/null' EXIT
  DB_URL="postgres://postgres@127.0.0.1:5432/$PG_DB"
fi
ledger_sql() { if [ -n "$PG" ]; then psql -h 127.0.0.1 -U postgres -d $PG_DB -tAc "$1"; else sqlite3 $W/db.sqlite "$1"; fi; }
cat > $W/c.yaml <<Y
server:
  listen: "127.0.0.1:$PORT"
  master_key: "lg-rig-master-0123456789abcdef"
storage:
  database_url: "$DB_URL"
providers:
  - name: fake
    kind: openai
    api_base: "$API"
    api_key: sk-x
tiers:
  bench: { markup: 0.4, byok: false, default_power_level: balanced }
models:
  - name: bench-free
    provider: fake
    upstream_model: bench-free
    free: true
  - name: bench-paid
    provider: fake
    upstream_model: bench-paid
    input_cost_per_1k: 0.001
    output_cost_per_1k: 0.002


$TEL
Y
RUST_LOG=${RIG_LOG:-warn} $PRE $BIN serve --config $W/c.yaml > $W/log 2>&1 &
G=$!
for i in $(seq 600); do curl -sf http://127.0.0.1:$PORT/health >/dev/null && break; sleep 0.1; done
curl -sf http://127.0.0.1:$PORT/health >/dev/null || { echo "gateway down:"; cat $W/log; cat $W/c.yaml; kill $G $UP_PID; exit 1; }
MASTER='Bearer lg-rig-master-0123456789abcdef'
KEY=$MASTER MODEL=bench-free KEYS=""
if [ "$ROUTE" = paid ]; then
  MODEL=bench-paid
  : > $W/keys
  for u in $(seq ${USERS:-1}); do
    USER_KEY=$(curl -sf -H "Authorization: $MASTER" -H 'content-type: application/json' \
      -d "{\"user_id\":\"rig-paid-$u\",\"tier\":\"bench\",\"role\":\"user\"}" \
      http://127.0.0.1:$PORT/api/v1/admin/users \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
    curl -sf -H "Authorization: $MASTER" -H 'content-type: application/json' \
      -d "{\"user_id\":\"rig-paid-$u\",\"amount\":\"100000000\",\"reason\":\"rig\"}" \
      http://127.0.0.1:$PORT/api/v1/llm/credits/add >/dev/null
    echo "Bearer $USER_KEY" >> $W/keys
  done
  KEY="Bearer $USER_KEY"
  KEYS="--keys-file $W/keys"
fi
AUTH=(--key "$KEY"); [ -n "$KEYS" ] && AUTH=($KEYS)
echo "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello in five words.\"}],\"max_tokens\":16}" > $W/body.json
thread_counts() { # per thread: tid, name, voluntary and involuntary switches, CPU ticks
  for t in /proc/$1/task/*; do
    read -r -a st < $t/stat
    echo "${t##*/} $(cat $t/comm | tr ' ' _) $(awk '/^voluntary/{print $2}' $t/status) $(awk '/^nonvoluntary/{print $2}' $t/status) $((st[13]+st[14]))"
  done
}
ticks() { # a process's CPU ticks (user + system)
  local st; read -r -a st < /proc/$1/stat; echo $((st[13]+st[14]))
}
snap() { # cpu_ticks ctxsw minflt
  local c=0 s=0
  for t in /proc/$G/task/*; do
    set -- $(awk '/voluntary_ctxt_switches/{s+=$2} END{print s}' $t/status); s=$((s+$1))
  done
  read -r -a st < /proc/$G/stat
  echo "$((st[13]+st[14])) $s ${st[9]}"
}
$LOADGEN run --addr 127.0.0.1:$PORT "${AUTH[@]}" --body-file $W/body.json --concurrency $CONC --warmup-ms ${WARM:-1000} --duration-ms 1 --output json >/dev/null 2>&1
A=$(snap); UA=$(ticks $UP_PID)
[ -n "$PRE" ] && callgrind_control -z $G >/dev/null
thread_counts $G > $W/thrA
OUT=$($LOADGEN run --addr 127.0.0.1:$PORT "${AUTH[@]}" --body-file $W/body.json --concurrency $CONC --warmup-ms 0 --duration-ms $((SECS*1000)) $MAXREQ --output json 2>&1)
B=$(snap); UB=$(ticks $UP_PID)
[ -n "$PRE" ] && callgrind_control -d $G >/dev/null
thread_counts $G > $W/thrB
[ -n "$THR" ] && join <(sort $W/thrA) <(sort $W/thrB) | awk '{printf "  %-16s vol %6d nonvol %6d cpu %5d\n", $2, $7-$3, $8-$4, $9-$5}'
SP=$(curl -s -H "Authorization: Bearer lg-rig-master-0123456789abcdef" http://127.0.0.1:$PORT/metrics | grep -E "^llmgate_(trace|span)[a-z_]*" | tr "\n" " ")
kill $G; wait $G 2>/dev/null
exec 3>&-; wait $UP_PID 2>/dev/null
echo "  $SP"
AGG="group_concat(kind || '=' || n, ' ')"; [ -n "$PG" ] && AGG="string_agg(kind || '=' || n, ' ')"
[ -n "$LEDGER" ] && ledger_sql "SELECT '  ledger: ' || $AGG FROM (SELECT kind, count(*) n FROM credit_ledger WHERE user_id LIKE 'rig-paid-%' GROUP BY kind) k"
python3 - "$MODE" "$A" "$B" "$OUT" "$((UB-UA))" "${P99:-0}" <<'P'
import sys, json
mode, a, b, out = sys.argv[1], list(map(int, sys.argv[2].split())), list(map(int, sys.argv[3].split())), sys.argv[4]
tail = sys.argv[6] == "1"
up_ticks = int(sys.argv[5])
try: j = json.loads(out)
except Exception: print("bad", out[:300]); sys.exit()
n = j.get("requests") or j.get("count") or j.get("ok")
keys = {k: j[k] for k in j if not isinstance(j[k], (list, dict))}
ok = j.get("ok", n)
rate = round(j.get("throughput",0))
cpu = (b[0]-a[0]) * 10000.0 / max(ok,1)  # ticks (10 ms) -> µs
def quantile(name):
    q = (j.get("total") or {}).get(name)
    if isinstance(q, dict): q = q.get("secs", 0) * 1e9 + q.get("nanos", 0)
    return f" {name}={q / 1000:.1f}us" if isinstance(q, (int, float)) else ""
p50 = quantile("p50")
p99 = quantile("p99") if tail else ""
print(f"{mode} req/s={rate}{p50}{p99} ok={ok} cpu/req={cpu:.1f}us ctxsw/req={(b[1]-a[1])/max(ok,1):.3f} minflt/req={(b[2]-a[2])/max(ok,1):.3f} upstream_cpu/req={up_ticks*10000.0/max(ok,1):.1f}us {keys if rate is None else ''}")
P
rm -rf $W
