#!/usr/bin/env bash
# Measures hyper's HTTP/1 server on mini against the same server on tokio's current-thread
# runtime, with wrk: requests per CPU-second of the server and p99 latency, at 100 and 1000
# connections, in interleaved rounds so that drift on a shared machine touches both alike.
#
#   http-echo/bench.sh [ROUNDS] [SECONDS]      # defaults: 6 rounds of 10 s per point
#
# Both servers run for the whole benchmark, pinned to core $SERVER_CPU (only one is loaded at
# a time); wrk runs pinned to core $CLIENT_CPU with one thread. For every run the server's CPU
# time (utime + stime from /proc/PID/stat) is read before and after, so each run gives
# requests / CPU-seconds; each round runs both servers at both connection counts, the order
# of the servers alternating between rounds. The summary gives, per point, the median and the
# range over rounds, and the median and range of mini's ratio to tokio within each round.
#
# Needs wrk (Debian/Ubuntu: `sudo apt-get install -y wrk`; others: https://github.com/wg/wrk)
# and taskset (util-linux). Without wrk it says so and exits 0 (skipped).
# Environment: CONNS (default "100 1000"), SERVER_CPU (0), CLIENT_CPU (1), OUT (the raw results,
# default $TMPDIR/http-echo-bench.tsv).
set -euo pipefail

rounds=${1:-6}
secs=${2:-10}
conns=${CONNS:-100 1000}
server_cpu=${SERVER_CPU:-0}
client_cpu=${CLIENT_CPU:-1}
out=${OUT:-${TMPDIR:-/tmp}/http-echo-bench.tsv}

if ! command -v wrk >/dev/null; then
    echo "bench.sh: skipped: wrk is not installed (Debian/Ubuntu: sudo apt-get install -y wrk)"
    exit 0
fi
command -v taskset >/dev/null || { echo "bench.sh: taskset (util-linux) is needed" >&2; exit 1; }

root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p http-echo --features tokio
bin=${CARGO_TARGET_DIR:-$root/target}/release/http-echo
ticks_per_s=$(getconf CLK_TCK)

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# start RUNTIME: starts a pinned server; sets $addr and $pid.
start() {
    taskset -c "$server_cpu" "$bin" --runtime "$1" --addr 127.0.0.1:0 >"$work/$1.out" 2>"$work/$1.err" &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do
        if grep -q '^listening on ' "$work/$1.out"; then break; fi
        sleep 0.1
    done
    addr=$(sed -n 's/^listening on //p' "$work/$1.out")
    [ -n "$addr" ] || { echo "bench.sh: $1 did not start: $(cat "$work/$1.err")" >&2; exit 1; }
}

# cpu_ticks PID: the process's user + system CPU time, in clock ticks.
cpu_ticks() {
    # Fields 14 and 15, counted after the ")" that ends the command name.
    sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# run NAME PID ADDR CONNS SECS: one wrk run; prints "requests cpu_seconds p99_ms errors".
run() {
    local before after report
    before=$(cpu_ticks "$2")
    report=$(taskset -c "$client_cpu" wrk -t1 -c"$4" -d"$5"s --latency "http://$3/")
    after=$(cpu_ticks "$2")
    echo "$report" | awk -v cpu=$(( after - before )) -v hz="$ticks_per_s" '
        / 99% / { v = $2; unit = v; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v);
                  p99 = v * (unit == "us" ? 0.001 : unit == "s" ? 1000 : 1) }
        / requests in / { requests = $1 }
        /Socket errors|Non-2xx/ { errors = errors $0 ";" }
        END { printf "%d %.2f %.3f %s\n", requests, cpu / hz, p99, (errors == "" ? "-" : errors) }'
}

start mini; mini_addr=$addr; mini_pid=$pid
start tokio; tokio_addr=$addr; tokio_pid=$pid

echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; servers on CPU $server_cpu, wrk on CPU $client_cpu"
echo "# $rounds rounds x ${secs}s per point; connections: $conns; raw results: $out"
printf 'round\truntime\tconns\trequests\tcpu_s\treq_per_cpu_s\tp99_ms\terrors\n' | tee "$out"

# Warm-up: both servers, each count, a short run each (not recorded).
for c in $conns; do
    run mini "$mini_pid" "$mini_addr" "$c" 2 >/dev/null
    run tokio "$tokio_pid" "$tokio_addr" "$c" 2 >/dev/null
done

for round in $(seq "$rounds"); do
    order="mini tokio"
    if (( round % 2 == 0 )); then order="tokio mini"; fi
    for c in $conns; do
        for rt in $order; do
            if [ "$rt" = mini ]; then p=$mini_pid a=$mini_addr; else p=$tokio_pid a=$tokio_addr; fi
            read -r requests cpu p99 errors < <(run "$rt" "$p" "$a" "$c" "$secs")
            rate=$(awk -v r="$requests" -v c="$cpu" 'BEGIN { printf "%.0f", (c > 0 ? r / c : 0) }')
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$rt" "$c" "$requests" "$cpu" "$rate" "$p99" "$errors" | tee -a "$out"
        done
    done
done

# Summary: per point the median [min-max] over rounds, and mini/tokio within each round.
echo
awk -F'\t' 'NR > 1 { key = $3; rate[$2, key, $1] = $6; p99[$2, key, $1] = $7; keys[key] = 1; n = ($1 > n ? $1 : n) }
function stats(a, count, fmt,    i, j, t) {
    for (i = 1; i <= count; i++) for (j = i + 1; j <= count; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    med = (count % 2 ? a[(count + 1) / 2] : (a[count / 2] + a[count / 2 + 1]) / 2)
    return sprintf(fmt " [" fmt "-" fmt "]", med, a[1], a[count])
}
END {
    printf "%-6s %-26s %-26s %-22s %-22s %-20s %-20s\n", "conns", "mini req/CPU-s", "tokio req/CPU-s", "mini p99 ms", "tokio p99 ms", "ratio req/CPU-s", "ratio p99"
    for (key in keys) {
        for (r = 1; r <= n; r++) { a1[r] = rate["mini", key, r]; a2[r] = rate["tokio", key, r]; a3[r] = p99["mini", key, r]; a4[r] = p99["tokio", key, r]
            a5[r] = rate["mini", key, r] / rate["tokio", key, r]; a6[r] = p99["mini", key, r] / p99["tokio", key, r] }
        printf "%-6s %-26s %-26s %-22s %-22s %-20s %-20s\n", key, stats(a1, n, "%d"), stats(a2, n, "%d"), stats(a3, n, "%.2f"), stats(a4, n, "%.2f"), stats(a5, n, "%.3f"), stats(a6, n, "%.3f")
    }
}' "$out"
echo "(median [min-max] over $rounds rounds; ratio = mini / tokio within a round: the target is req/CPU-s >= 1, p99 <= 1.1)"
