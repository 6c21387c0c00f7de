#!/usr/bin/env bash
# Side-by-side DNS benchmark (root), in one run, the same load client (dnsperf), always in
# the client pod (cgroup + netns, behind its veth), against:
#   direct       the backend resolver on a port the client's policy allows at L4 only
#                (5353/UDP: not DNS to the kernel, decided there, no proxy): the limit
#   dnsmasq      dnsmasq as a plain forwarder on the host, on the pods' gateway
#                (--no-resolv --server=backend --cache-size=0: no cache, so every query
#                is really forwarded; dnsmasq has one thread); the client's policy allows
#                it at L4 (toEntities host)
#   sluice-10    the backend on port 53: the kernel redirects every query to sluice's DNS
#                proxy, which enforces rules.dns of 10 selectors (`sluice up` default: one
#                worker thread per CPU; SLUICE_WORKERS=1 for dnsmasq's budget)
#   sluice-10k   the same with 10,000 selectors (matchName and matchPattern mixed; the
#                queried names are matched by the last six)
# The backend is dnsmasq in the server pod answering every name under bench.test from
# its own records (--address, no upstream), on port 53 and, a second instance, on 5353.
# Load: dnsperf -c 8 -q 64 (closed loop, 64 queries outstanding over 8 sockets) cycling
# through ten names; -v gives each query's latency, from which p50/p99 are computed.
# Proxy CPU (user+system of the proxy process from /proc) per query. Repetitions rotate
# through the targets; medians are printed, with ratios to dnsmasq and to direct.
# Every answer must be NOERROR: a REFUSED (a policy mismatch) or lost queries fail the run.
# Usage: [MODES="direct dnsmasq …"] [SLUICE_WORKERS=N] bench/dns.sh [repetitions=3] [seconds=10]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
reps=${1:-3}
secs=${2:-10}

need=()
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
command -v dig >/dev/null || need+=(bind9-dnsutils)
command -v bc >/dev/null || need+=(bc)
install_missing "${need[@]}"
prepare_sluice
work=$(mktemp -d /tmp/sluice-dns-bench.XXXX)
client=10.200.40.2
server=10.200.40.3
gateway=169.254.1.1
fwd_port=15554
inpod="$sluice exec dbench/client --"
node= fwd=
trap 'kill $fwd 2>/dev/null; kill "$node" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

# What the load asks, cycled: five names allowed by matchName, five by one matchPattern.
for i in 1 2 3 4 5; do echo "api-$i.bench.test A"; echo "www-$i.shop.bench.test A"; done > "$work/queries"

selectors() { # $1 = number of rules.dns selectors; the last six match the queries
  awk -v n="$1" 'BEGIN {
    for (i = 1; i <= n - 6; i++) {
      if (i % 2) printf "        - {matchName: \"svc-%d.ns-%d.svc.cluster.local\"}\n", i, i % 97
      else printf "        - {matchPattern: \"*.tenant-%d.example.com\"}\n", i
    }
    for (i = 1; i <= 5; i++) printf "        - {matchName: \"api-%d.bench.test\"}\n", i
    print "        - {matchPattern: \"*.shop.bench.test\"}"
  }'
}

config() { # $1 = number of selectors
  cat > "$work/config.yaml" <<YAML
apiVersion: sluice.io/v1alpha1
kind: NodeConfig
metadata: {name: node}
spec: {proxy: {port: 15501, dnsPort: 15553, adminSocket: "$work/admin.sock"}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: client, namespace: dbench, labels: {app: client}}
spec: {addresses: ["$client"], run: {command: ["sleep", "infinity"]}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: server, namespace: dbench, labels: {app: server}}
spec:
  addresses: ["$server"]
  run:
    command:
    - sh
    - -c
    - |
      set -- --no-resolv --no-hosts --conf-file=/dev/null --pid-file= --log-facility=- \
        --listen-address=$server --bind-interfaces --address=/bench.test/192.0.2.1
      dnsmasq --port=5353 "\$@"
      exec dnsmasq --keep-in-foreground "\$@"
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: dns, namespace: dbench}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEndpoints: [{matchLabels: {app: server}}]
    toPorts:
    - ports: [{port: "53", protocol: UDP}]
      rules:
        dns:
$(selectors "$1")
  # The direct path: not DNS to the kernel (port 5353), decided there, no proxy.
  - toEndpoints: [{matchLabels: {app: server}}]
    toPorts: [{ports: [{port: "5353", protocol: UDP}]}]
  # dnsmasq on the gateway (a host address).
  - toEntities: [host]
    toPorts: [{ports: [{port: "$fwd_port", protocol: UDP}]}]
YAML
}

# mode → "enter command|server|port|proxy pids"
target() {
  case $1 in
    direct) echo "$inpod|$server|5353|" ;;
    dnsmasq) echo "$inpod|$gateway|$fwd_port|$fwd" ;;
    sluice-10|sluice-10k) echo "$inpod|$server|53|$node" ;;
  esac
}

run_dnsperf() { # $1 = mode, $2 = seconds; prints "qps p50_us p99_us cpu_us_per_query"
  local enter srv port pids t0 t1
  IFS='|' read -r enter srv port pids < <(target "$1")
  read -r -a pida <<< "$pids"
  local hz; hz=$(getconf CLK_TCK)
  t0=$(cpu_ticks "${pida[@]}")
  # shellcheck disable=SC2086
  $enter dnsperf -s "$srv" -p "$port" -d "$work/queries" -c 8 -q 64 -t 2 -l "$2" -v \
    >"$work/dnsperf.out" 2>&1
  t1=$(cpu_ticks "${pida[@]}")
  python3 - "$work/dnsperf.out" "$((t1 - t0))" "$hz" <<'PY'
import re, sys
path, ticks, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lat, text = [], []
with open(path) as f:
    for line in f:
        if line.startswith('> '):
            parts = line.split()
            if parts[1] != 'NOERROR':
                sys.exit('wrong answer: ' + line.strip())
            lat.append(float(parts[-1]))
        else:
            text.append(line)
text = ''.join(text)
done = int(re.search(r'Queries completed:\s+(\d+)', text).group(1))
lost = int(re.search(r'Queries lost:\s+(\d+)', text).group(1))
qps = float(re.search(r'Queries per second:\s+([\d.]+)', text).group(1))
if not done or lost > done / 1000:
    sys.exit(f'{lost} of {done + lost} queries lost')
lat.sort()
pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1e6
print(f'{qps:.0f} {pct(0.50):.0f} {pct(0.99):.0f} {ticks * 1e6 / hz / done:.1f}')
PY
}

config 10
start_node "$work/node.log" --workers "${SLUICE_WORKERS:-0}" --config "$work/config.yaml"
for port in 53 5353; do
  for _ in $(seq 50); do
    [ "$(dig +short +time=1 +tries=1 -p $port @$server api-1.bench.test)" = 192.0.2.1 ] && break; sleep 0.2
  done
done
dnsmasq --keep-in-foreground --no-resolv --no-hosts --conf-file=/dev/null --pid-file= \
  --log-facility=- --listen-address=$gateway --port=$fwd_port --bind-interfaces \
  --server=$server --cache-size=0 --dns-forward-max=1000 2>"$work/dnsmasq.log" & fwd=$!
sleep 1
read -r -a modes <<< "${MODES:-direct dnsmasq sluice-10 sluice-10k}"
declare -A qps p50 p99 cpu
for rep in $(seq "$reps"); do
  for mode in "${modes[@]}"; do
    case $mode in
      sluice-10) config 10; sleep 2 ;;
      sluice-10k) config 10000; sleep 3 ;;
    esac
    # Warm-up: the first query after a reload compiles the selectors; sockets, caches.
    run_dnsperf "$mode" 1 >/dev/null
    out=$(run_dnsperf "$mode" "$secs")
    read -r q a b c <<< "$out"
    qps[$mode]+="$q "; p50[$mode]+="$a "; p99[$mode]+="$b "; cpu[$mode]+="$c "
    echo "rep $rep $mode: $q queries/s, p50 ${a}µs, p99 ${b}µs, proxy CPU ${c}µs/query" >&2
  done
done
range() { tr ' ' '\n' | grep -v '^$' | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {print lo "–" hi}'; }
dq=$(echo "${qps[direct]:-}" | median); mq=$(echo "${qps[dnsmasq]:-}" | median); mp=$(echo "${p99[dnsmasq]:-}" | median)
ratio() { if [ -n "$2" ]; then echo "$1 / $2" | bc -l; else echo 0; fi; }
printf '| target | queries/s (min–max) | vs dnsmasq | vs direct | p50 µs | p99 µs | p99 vs dnsmasq | proxy CPU µs/query |\n|---|---|---|---|---|---|---|---|\n'
for mode in "${modes[@]}"; do
  q=$(echo "${qps[$mode]}" | median); a=$(echo "${p50[$mode]}" | median); b=$(echo "${p99[$mode]}" | median)
  c=$(echo "${cpu[$mode]}" | median); r=$(echo "${qps[$mode]}" | range)
  printf '| %s | %s (%s) | %.2f | %.2f | %s | %s | %.2f | %s |\n' "$mode" "$q" "$r" "$(ratio "$q" "$mq")" "$(ratio "$q" "$dq")" "$a" "$b" "$(ratio "$b" "$mp")" "$c"
done
