# What the side-by-side benchmarks share; sourced by bench/*.sh (after `cd` to the repo).

# Installs the Debian packages given (the callers list only what is missing).
install_missing() {
  [ $# -gt 0 ] || return 0
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Packaged services are not ours to run; the peers run from the benchmark's own configs.
stop_services() {
  local svc
  for svc in "$@"; do
    command -v systemctl >/dev/null && systemctl disable --now "$svc" >/dev/null 2>&1 || true
  done
}

# Builds the node and sets $sluice to it; raises the open-file limit for the load.
# SLUICE_BIN=path runs that binary instead (an A/B comparison with another build).
prepare_sluice() {
  ulimit -n "$(ulimit -Hn)"
  if [ -n "${SLUICE_BIN:-}" ]; then
    sluice=$(realpath "$SLUICE_BIN")
    return
  fi
  cargo build --release --locked -p sluice-proxy >/dev/null 2>&1
  sluice=$PWD/target/release/sluice
}

# start_node LOG ARGS...: `sluice up --quiet ARGS` with its stderr in LOG; $node is its
# pid once it says "node up" (exits with the log when it never does). One node per
# machine: first waits for a node a test may be running to stop.
start_node() {
  local log=$1
  shift
  mkdir -p /run/sluice && flock -w 1800 /run/sluice/node.lock true
  "$sluice" up --quiet "$@" 2>"$log" &
  node=$!
  for _ in $(seq 100); do grep -q "node up" "$log" && break; sleep 0.2; done
  grep -q "node up" "$log" || { cat "$log"; exit 1; }
}

# Total utime+stime (clock ticks) of the given pids.
cpu_ticks() {
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$t"
}

# Total stime (clock ticks: time in the kernel on their behalf) of the given pids.
sys_ticks() {
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{print $15}' "/proc/$p/stat"))); done
  echo "$t"
}

# The median of the numbers on stdin (space or newline separated); nothing for none
# (a mode left out of MODES).
median() { tr ' ' '\n' | { grep -v '^$' || true; } | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
