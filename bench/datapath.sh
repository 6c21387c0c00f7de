#!/usr/bin/env bash
# Side-by-side datapath benchmark (root): connects/s, bulk TCP throughput, proxy CPU and
# memory per idle connection between two pods of a running sluice node, in one run, for
#   direct   the client in the client pod's netns but outside every enrolled cgroup
#            (same network path, no BPF redirect, no proxy)
#   bypass   the client in the pod (cgroup + netns), an L4-only allow: after the first
#            connection the kernel BYPASS verdict sends it straight to the server
#   sluice   the client in the pod, audit mode over default deny: no verdict is ever
#            written back, so every connection goes through sluice's proxy (L4 splice)
#   nginx    the direct client through nginx's stream proxy on the host (1 worker)
#   haproxy  the direct client through haproxy in TCP mode on the host (1 thread)
# Repetitions rotate through the paths; medians are printed with ratios to direct.
# The client closes first, so its TIME_WAIT sockets pile up; the client pod's netns gets
# tcp_tw_reuse=1 so that they never exhaust its ports, which would slow whichever path
# runs later in a repetition (connect() searching longer for a free port).
# Proxy CPU is user+system time of the proxy process(es) from /proc, per connection
# and per GB. Memory per idle connection: RSS growth of the proxy, freshly started, while
# 1,000 more idle connections open through it beside 1,000 open already.
# Usage: bench/datapath.sh [repetitions=3] [connects=2000] [seconds=5]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
reps=${1:-3}
connects=${2:-2000}
secs=${3:-5}
idle=1000

need=()
command -v iperf3 >/dev/null || need+=(iperf3)
command -v haproxy >/dev/null || need+=(haproxy)
command -v nginx >/dev/null || need+=(nginx-light)
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || need+=(libnginx-mod-stream)
command -v bc >/dev/null || need+=(bc)
install_missing "${need[@]}"
stop_services nginx haproxy
prepare_sluice
work=$(mktemp -d /tmp/sluice-bench.XXXX)
server=10.200.20.3
gateway=169.254.1.1
node= ngx= hap=
trap 'kill $ngx $hap 2>/dev/null; kill "$node" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

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
      import socket, threading
      def idle():
          s = socket.socket()
          s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
          s.bind(('$server', 9001))
          s.listen(4096)
          held = []
          while True:
              held.append(s.accept()[0])
      threading.Thread(target=idle, daemon=True).start()
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

# Peers: one listener per server port, ports 153N0 + {0: connect, 1: iperf3, 2: idle}.
cat > "$work/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 16384; }
stream {
  server { listen $gateway:15310 backlog=4096; proxy_pass $server:9000; }
  server { listen $gateway:15311 backlog=4096; proxy_pass $server:5201; }
  server { listen $gateway:15312 backlog=4096; proxy_pass $server:9001; }
}
CONF
cat > "$work/haproxy.cfg" <<CONF
global
  maxconn 4000
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 120s
  timeout server 120s
listen connect
  bind $gateway:15320 backlog 4096
  server s $server:9000
listen bulk
  bind $gateway:15321 backlog 4096
  server s $server:5201
listen idle
  bind $gateway:15322 backlog 4096
  server s $server:9001
CONF

connect_py="import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]); t = time.perf_counter()
for _ in range(n):
    s = socket.create_connection((host, port)); s.close()
print(int(n / (time.perf_counter() - t)))"

# RSS growth (bytes) per connection of the given pids' total when N more idle connections
# open beside N already open: the first batch absorbs what the process still settles
# after its start (a fresh node returns startup memory for a while, which read as a
# negative growth), the second is the cost of a connection.
idle_py="import socket, sys, time
host, port, n, pids = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(',')
def rss():
    total = 0
    for p in pids:
        for line in open('/proc/%s/status' % p):
            if line.startswith('VmRSS:'):
                total += int(line.split()[1]) * 1024
    return total
held = [socket.create_connection((host, port)) for _ in range(n)]
time.sleep(2)
before = rss()
held += [socket.create_connection((host, port)) for _ in range(n)]
time.sleep(2)
print(int((rss() - before) / n))"

# mode → how the client runs, where it connects, and which pids are the proxy.
target() { # $1 = mode, $2 = server port index (0 connect, 1 iperf3, 2 idle); prints "host port"
  local ports=(9000 5201 9001)
  case $1 in
    direct|bypass|sluice) echo "$server ${ports[$2]}" ;;
    nginx) echo "$gateway 1531$2" ;;
    haproxy) echo "$gateway 1532$2" ;;
  esac
}
proxy_pids() {
  case $1 in
    sluice|bypass) echo "$node" ;;
    nginx) pgrep -P "$ngx" | tr '\n' ' ' ;;
    haproxy) echo "$hap" ;;
    *) echo "" ;;
  esac
}

run() { # $1 = mode; prints "connects/s Gbit/s cpu-us-per-connect cpu-s-per-GB"
  local enter host port pids t0 t1 cps gbps bytes
  if [ "$1" = bypass ] || [ "$1" = sluice ]; then enter=("$sluice" exec bench/client --); else enter=(ip netns exec sluice-bench-client); fi
  read -r -a pids <<< "$(proxy_pids "$1")"
  local hz; hz=$(getconf CLK_TCK)
  read -r host port < <(target "$1" 0)
  t0=$(cpu_ticks "${pids[@]}")
  cps=$("${enter[@]}" python3 -c "$connect_py" "$host" "$port" "$connects")
  t1=$(cpu_ticks "${pids[@]}")
  local us_per_conn; us_per_conn=$(echo "($t1 - $t0) * 1000000 / $hz / $connects" | bc -l)
  read -r host port < <(target "$1" 1)
  t0=$(cpu_ticks "${pids[@]}")
  read -r gbps bytes < <("${enter[@]}" iperf3 -c "$host" -p "$port" -t "$secs" -J \
    | python3 -c "import json,sys; e=json.load(sys.stdin)['end']['sum_received']; print(round(e['bits_per_second']/1e9, 2), e['bytes'])")
  t1=$(cpu_ticks "${pids[@]}")
  local s_per_gb; s_per_gb=$(echo "($t1 - $t0) / $hz / ($bytes / 1000000000)" | bc -l)
  printf '%s %s %.1f %.3f\n' "$cps" "$gbps" "$us_per_conn" "$s_per_gb"
}

config false
start_node "$work/node.log" --config "$work/config.yaml"
sleep 2
ip netns exec sluice-bench-client sysctl -q -w net.ipv4.tcp_tw_reuse=1
nginx -c "$work/nginx.conf" & ngx=$!
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 & hap=$!
sleep 1
modes=(direct bypass sluice nginx haproxy)
declare -A cps gbps cpc cpg
for rep in $(seq "$reps"); do
  for mode in "${modes[@]}"; do
    if [ "$mode" = sluice ]; then config true; else config false; fi
    sleep 1 # the node reloads on the file change
    read -r c g u s < <(run "$mode")
    cps[$mode]+="$c "; gbps[$mode]+="$g "; cpc[$mode]+="$u "; cpg[$mode]+="$s "
    echo "rep $rep $mode: $c connects/s, $g Gbit/s, proxy CPU $u µs/connect, $s s/GB" >&2
  done
done
printf '| path | connects/s | ratio | proxy CPU µs/connect | Gbit/s | ratio | proxy CPU s/GB |\n|---|---|---|---|---|---|---|\n'
dc=$(echo "${cps[direct]}" | median); dg=$(echo "${gbps[direct]}" | median)
for mode in "${modes[@]}"; do
  c=$(echo "${cps[$mode]}" | median); g=$(echo "${gbps[$mode]}" | median)
  u=$(echo "${cpc[$mode]}" | median); s=$(echo "${cpg[$mode]}" | median)
  printf '| %s | %s | %.2f | %s | %s | %.2f | %s |\n' "$mode" "$c" "$(echo "$c / $dc" | bc -l)" "$u" "$g" "$(echo "$g / $dg" | bc -l)" "$s"
done

# Memory per idle proxied connection (sluice: every connection through the proxy), each
# proxy started afresh: after the load above their allocators hold freed memory that new
# connections reuse, which hid what a connection costs (one run read negative).
kill "$node" $ngx $hap 2>/dev/null || true
wait "$node" $ngx $hap 2>/dev/null || true
config true
start_node "$work/node-fresh.log" --config "$work/config.yaml"
nginx -c "$work/nginx.conf" & ngx=$!
haproxy -f "$work/haproxy.cfg" -db >>"$work/haproxy.log" 2>&1 & hap=$!
sleep 2
printf '\n| proxy | RSS per idle connection (bytes, %s connections) |\n|---|---|\n' "$idle"
for mode in sluice nginx haproxy; do
  read -r -a pids <<< "$(proxy_pids "$mode")"
  read -r host port < <(target "$mode" 2)
  if [ "$mode" = sluice ]; then enter=("$sluice" exec bench/client --); else enter=(ip netns exec sluice-bench-client); fi
  b=$("${enter[@]}" python3 -c "$idle_py" "$host" "$port" "$idle" "$(IFS=,; echo "${pids[*]}")")
  printf '| %s | %s |\n' "$mode" "$b"
done
