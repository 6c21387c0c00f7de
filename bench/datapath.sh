#!/usr/bin/env bash
# Side-by-side datapath benchmark (root): connects/s and bulk TCP throughput between two
# pods of a running sluice node, in one run, for
#   direct  the client in the client pod's netns but outside every enrolled cgroup
#           (same network path, no BPF redirect, no proxy)
#   bypass  the client in the pod (cgroup + netns), an L4-only allow: after the first
#           connection the kernel BYPASS verdict sends it straight to the server
#   proxy   the client in the pod, audit mode over default deny: no verdict is ever
#           written back, so every connection goes through the proxy (L4 splice)
# Repetitions rotate direct, bypass, proxy; the medians are printed with ratios to
# direct. Usage: bench/datapath.sh [repetitions=3] [connects=2000] [seconds=5]
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-3}
connects=${2:-2000}
secs=${3:-5}

command -v iperf3 >/dev/null || { apt-get update -qq && apt-get install -y -qq iperf3 >/dev/null; }
cargo build --release --locked -p sluice-proxy >/dev/null 2>&1
sluice=$PWD/target/release/sluice
work=$(mktemp -d /tmp/sluice-bench.XXXX)
server=10.200.20.3
trap 'kill "$node" 2>/dev/null; wait "$node" 2>/dev/null; rm -rf "$work"' EXIT

config() { # $1 = audit (true|false)
  cat > "$work/config.yaml" <<YAML
apiVersion: sluice.io/v1alpha1
kind: NodeConfig
metadata: {name: node}
spec: {policyAuditMode: $1, proxy: {port: 15201, adminSocket: "$work/admin.sock"}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: client, namespace: bench, labels: {app: client}}
spec: {addresses: ["10.200.20.2"], run: {command: ["sleep", "infinity"]}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: server, namespace: bench, labels: {app: server}}
spec:
  addresses: ["$server"]
  run:
    command:
    - sh
    - -c
    - |
      iperf3 -s -B $server -D
      exec python3 -c "
      import socket
      s = socket.socket()
      s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
      s.bind(('$server', 9000))
      s.listen(4096)
      while True:
          c, _ = s.accept()
          c.close()
      "
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: deny, namespace: bench}
spec: {endpointSelector: {}, ingress: [{}], egress: [{}]}
YAML
  if [ "$1" = false ]; then cat >> "$work/config.yaml" <<YAML
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: allow, namespace: bench}
specs:
- endpointSelector: {matchLabels: {app: server}}
  ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]
- endpointSelector: {matchLabels: {app: client}}
  egress: [{toEndpoints: [{matchLabels: {app: server}}]}]
YAML
  fi
}

connect_py="import socket, sys, time
n = int(sys.argv[1]); t = time.perf_counter()
for _ in range(n):
    s = socket.create_connection(('$server', 9000)); s.close()
print(int(n / (time.perf_counter() - t)))"

run() { # $1 = mode; prints "connects/s Gbit/s"
  local enter
  if [ "$1" = direct ]; then enter=(ip netns exec sluice-bench-client); else enter=("$sluice" exec bench/client --); fi
  local cps gbps
  cps=$("${enter[@]}" python3 -c "$connect_py" "$connects")
  gbps=$("${enter[@]}" iperf3 -c "$server" -t "$secs" -J | python3 -c "import json,sys; print(round(json.load(sys.stdin)['end']['sum_received']['bits_per_second']/1e9, 2))")
  echo "$cps $gbps"
}

config false
"$sluice" up --quiet --config "$work/config.yaml" 2>"$work/node.log" &
node=$!
for _ in $(seq 50); do grep -q "node up" "$work/node.log" && break; sleep 0.2; done
sleep 2
declare -A cps gbps
for rep in $(seq "$reps"); do
  for mode in direct bypass proxy; do
    if [ "$mode" = proxy ]; then config true; else config false; fi
    sleep 1 # the node reloads on the file change
    read -r c g < <(run "$mode")
    cps[$mode]+="$c "; gbps[$mode]+="$g "
    echo "rep $rep $mode: $c connects/s, $g Gbit/s" >&2
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '| path | connects/s (median) | ratio | Gbit/s (median) | ratio |\n|---|---|---|---|---|\n'
dc=$(echo "${cps[direct]}" | median); dg=$(echo "${gbps[direct]}" | median)
for mode in direct bypass proxy; do
  c=$(echo "${cps[$mode]}" | median); g=$(echo "${gbps[$mode]}" | median)
  printf '| %s | %s | %.2f | %s | %.2f |\n' "$mode" "$c" "$(echo "$c / $dc" | bc -l)" "$g" "$(echo "$g / $dg" | bc -l)"
done
