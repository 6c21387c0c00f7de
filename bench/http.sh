#!/usr/bin/env bash
# Side-by-side HTTP benchmark (root), in one run, the same client, always in its pod
# (cgroup + netns, behind its veth), against:
#   direct     straight to the backend on a port its policy allows at L4 only: the
#              kernel decides it once (BYPASS), no proxy (the limit)
#   nginx      through nginx as a plain reverse proxy on the host, on the pods' gateway
#              (worker_processes auto: one per CPU, keep-alive upstream); the client's
#              policy allows it at L4 (toEntities host), so the kernel lets it by
#   haproxy    through haproxy in HTTP mode, the same way (nbthread: one per CPU)
#   haproxy-tcp  through haproxy in TCP mode: a byte relay that parses nothing, each
#              client connection spliced to a backend connection of its own; not an
#              HTTP proxy, the floor for any relay in user space over the kernel's TCP
#              (not in the default MODES)
#   sluice-10  every request through sluice's HTTP engine with an L7 policy of 10
#              rules (`sluice up` default: one worker thread per CPU)
#   sluice-1k  the same with 1,000 rules
# The backend is nginx (1 worker) answering a small body, inside the server pod.
# Load: wrk -t1 -c32 (HTTP/1.1 keep-alive, closed loop) for rps and p50/p99; h2load -m10
# for HTTP/2 (direct, nginx, sluice). Proxy CPU (user+system of the proxy process from
# /proc) per request, and the part of it in the kernel (system time: the proxy's socket
# calls and the TCP/IP and veth work they run). Repetitions rotate through the targets; medians are printed, with
# ratios to nginx and to direct.
# CLOSE=1: every request on a connection of its own (wrk sends `Connection: close`), the
# HTTP/1.1 load of clients without keep-alive: the connection's setup is paid per request.
# Usage: [MODES="direct nginx …"] [SLUICE_WORKERS=N] [CLOSE=1] bench/http.sh [repetitions=3] [seconds=10]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
reps=${1:-3}
secs=${2:-10}
close=()
[ "${CLOSE:-0}" = 1 ] && close=(-H "Connection: close")

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v haproxy >/dev/null || need+=(haproxy)
command -v nginx >/dev/null || need+=(nginx-light)
command -v bc >/dev/null || need+=(bc)
install_missing "${need[@]}"
stop_services nginx haproxy
prepare_sluice
work=$(mktemp -d /tmp/sluice-http-bench.XXXX)
server=10.200.30.3
gateway=169.254.1.1
inpod="$sluice exec hbench/client --"
node= ngx= hap=
trap 'kill $ngx $hap 2>/dev/null; kill "$node" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

# The backend: nginx in the server pod, one worker, a 2-byte body on every path.
cat > "$work/backend.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/backend.pid;
error_log $work/backend.err;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  client_body_temp_path $work/tmp-body; proxy_temp_path $work/tmp-proxy;
  fastcgi_temp_path $work/tmp-fcgi; uwsgi_temp_path $work/tmp-uwsgi; scgi_temp_path $work/tmp-scgi;
  server {
    listen $server:8080 backlog=4096;
    listen $server:8090 backlog=4096;
    location / { return 200 "ok"; }
  }
  server {
    listen $server:8081 backlog=4096 http2;
    listen $server:8091 backlog=4096 http2;
    location / { return 200 "ok"; }
  }
}
CONF

rules() { # $1 = number of HTTP rules; the last one is what the load asks for
  local n=$1 i
  for i in $(seq 1 $((n - 1))); do
    printf '        - {method: "GET|POST", path: "/api/v1/svc%d/.*", headers: ["X-Tenant: t%d"]}\n' "$i" "$i"
  done
  printf '        - {method: GET, path: "/bench(/.*)?"}\n'
}

config() { # $1 = rules
  cat > "$work/config.yaml" <<YAML
apiVersion: sluice.io/v1alpha1
kind: NodeConfig
metadata: {name: node}
spec: {proxy: {port: 15401, adminSocket: "$work/admin.sock"}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: client, namespace: hbench, labels: {app: client}}
spec: {addresses: ["10.200.30.2"], run: {command: ["sleep", "infinity"]}}
---
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata: {name: server, namespace: hbench, labels: {app: server}}
spec:
  addresses: ["$server"]
  run: {command: ["nginx", "-c", "$work/backend.conf"]}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api, namespace: hbench}
specs:
- endpointSelector: {matchLabels: {app: server}}
  ingress:
  - fromEndpoints: [{}]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}, {port: "8081", protocol: TCP}]
      rules:
        http:
$(rules "$1")
  # The direct path: no L7 rules, decided once in the kernel.
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts:
    - ports: [{port: "8090", protocol: TCP}, {port: "8091", protocol: TCP}]
- endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEndpoints: [{matchLabels: {app: server}}]
  # nginx and haproxy on the gateway (a host address).
  - toEntities: [host]
    toPorts:
    - ports: [{port: "15410", protocol: TCP}, {port: "15411", protocol: TCP}, {port: "15420", protocol: TCP}, {port: "15421", protocol: TCP}]
YAML
}

# Plain reverse proxies on the host, keep-alive to the backend.
cat > "$work/nginx.conf" <<CONF
worker_processes auto;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  client_body_temp_path $work/tmp-body; proxy_temp_path $work/tmp-proxy;
  fastcgi_temp_path $work/tmp-fcgi; uwsgi_temp_path $work/tmp-uwsgi; scgi_temp_path $work/tmp-scgi;
  upstream backend { server $server:8080; keepalive 64; }
  upstream backend2 { server $server:8081; keepalive 64; }
  server {
    listen $gateway:15410 backlog=4096;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen $gateway:15411 backlog=4096 http2;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
cat > "$work/haproxy.cfg" <<CONF
global
  maxconn 4000
  nbthread $(nproc)
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
listen web
  bind $gateway:15420
  server s $server:8080
listen relay
  mode tcp
  bind $gateway:15421
  server s $server:8080
CONF

# mode → "enter command|url|proxy pids"
target() {
  case $1 in
    direct) echo "$inpod|http://$server:8090/bench|" ;;
    nginx) echo "$inpod|http://$gateway:15410/bench|$(pgrep -P "$ngx" | tr '\n' ' ')" ;;
    haproxy) echo "$inpod|http://$gateway:15420/bench|$hap" ;;
    haproxy-tcp) echo "$inpod|http://$gateway:15421/bench|$hap" ;;
    sluice-10|sluice-1k) echo "$inpod|http://$server:8080/bench|$node" ;;
  esac
}
h2target() {
  case $1 in
    direct) echo "$inpod|http://$server:8091/bench|" ;;
    nginx) echo "$inpod|http://$gateway:15411/bench|$(pgrep -P "$ngx" | tr '\n' ' ')" ;;
    sluice-10|sluice-1k) echo "$inpod|http://$server:8081/bench|$node" ;;
    *) echo "" ;;
  esac
}

run_wrk() { # $1 = mode; prints "rps p50_us p99_us cpu_us_per_req sys_us_per_req"
  local enter url pids t0 t1 s0 s1 out
  IFS='|' read -r enter url pids < <(target "$1")
  read -r -a pida <<< "$pids"
  local hz; hz=$(getconf CLK_TCK)
  t0=$(cpu_ticks "${pida[@]}"); s0=$(sys_ticks "${pida[@]}")
  # shellcheck disable=SC2086
  out=$($enter wrk -t1 -c32 -d"${secs}s" --latency "${close[@]}" "$url")
  t1=$(cpu_ticks "${pida[@]}"); s1=$(sys_ticks "${pida[@]}")
  echo "$out" | python3 -c "
import re, sys
text = sys.stdin.read()
def us(v):
    m = re.match(r'([\d.]+)(us|ms|s|m)$', v)
    if not m:
        sys.exit('wrk: unexpected latency ' + repr(v) + '\n' + text)
    n, u = float(m.group(1)), m.group(2)
    return n * {'us': 1, 'ms': 1e3, 's': 1e6, 'm': 60e6}[u]
def field(pattern):
    m = re.search(pattern, text, re.M)
    if not m:
        sys.exit('wrk: no ' + repr(pattern) + ' in its output:\n' + text)
    return m.group(1)
rps = float(field(r'Requests/sec:\s+([\d.]+)'))
# Anchored to the line start: a Stdev column such as '71.50%' must not read as the 50th.
p50 = us(field(r'^\s*50%\s+(\S+)'))
p99 = us(field(r'^\s*99%\s+(\S+)'))
non2xx = re.search(r'Non-2xx or 3xx responses: (\d+)', text)
if non2xx:
    sys.exit('wrong answers: ' + non2xx.group(1) + ' non-2xx responses')
reqs = rps * $secs
print(f'{rps:.0f} {p50:.0f} {p99:.0f} {($t1 - $t0) * 1e6 / $hz / reqs:.1f} {($s1 - $s0) * 1e6 / $hz / reqs:.1f}')
"
}

run_h2() { # $1 = mode; prints "rps"
  local enter url pids
  IFS='|' read -r enter url pids < <(h2target "$1")
  [ -n "$url" ] || { echo "-"; return; }
  # shellcheck disable=SC2086
  $enter h2load -c 8 -m 10 -D "$secs" "$url" | python3 -c "
import re, sys
text = sys.stdin.read()
ok = re.search(r'(\d+) succeeded', text)
if not ok or re.search(r'status codes: \d+ 2xx, \d+ 3xx, ([1-9]\d*) 4xx', text):
    sys.exit('h2load: failed requests')
print(re.search(r'finished in [\d.]+\w+, ([\d.]+) req/s', text).group(1).split('.')[0])
"
}

config 10
start_node "$work/node.log" --workers "${SLUICE_WORKERS:-0}" --config "$work/config.yaml"
sleep 2
nginx -c "$work/nginx.conf" & ngx=$!
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 & hap=$!
sleep 1
read -r -a modes <<< "${MODES:-direct nginx haproxy sluice-10 sluice-1k}"
declare -A rps p50 p99 cpu sys h2
for rep in $(seq "$reps"); do
  for mode in "${modes[@]}"; do
    case $mode in
      sluice-10) config 10; sleep 2 ;;
      sluice-1k) config 1000; sleep 3 ;;
    esac
    read -r r a b c k < <(run_wrk "$mode")
    h=$(run_h2 "$mode")
    rps[$mode]+="$r "; p50[$mode]+="$a "; p99[$mode]+="$b "; cpu[$mode]+="$c "; sys[$mode]+="$k "; h2[$mode]+="$h "
    echo "rep $rep $mode: $r req/s, p50 ${a}µs, p99 ${b}µs, proxy CPU ${c}µs/req (${k} in the kernel); h2 $h req/s" >&2
  done
done
dr=$(echo "${rps[direct]:-}" | median); nr=$(echo "${rps[nginx]:-}" | median); np=$(echo "${p99[nginx]:-}" | median)
ratio() { if [ -n "$2" ]; then echo "$1 / $2" | bc -l; else echo 0; fi; }
printf '| target | req/s | vs nginx | vs direct | p50 µs | p99 µs | p99 vs nginx | proxy CPU µs/req | of it kernel | h2 req/s |\n|---|---|---|---|---|---|---|---|---|---|\n'
for mode in "${modes[@]}"; do
  r=$(echo "${rps[$mode]}" | median); a=$(echo "${p50[$mode]}" | median); b=$(echo "${p99[$mode]}" | median)
  c=$(echo "${cpu[$mode]}" | median); k=$(echo "${sys[$mode]}" | median); h=$(echo "${h2[$mode]}" | median)
  printf '| %s | %s | %.2f | %.2f | %s | %s | %.2f | %s | %s | %s |\n' "$mode" "$r" "$(ratio "$r" "$nr")" "$(ratio "$r" "$dr")" "$a" "$b" "$(ratio "$b" "$np")" "$c" "$k" "$h"
done
