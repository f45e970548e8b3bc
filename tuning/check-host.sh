#!/usr/bin/env bash
# Checks whether this host is ready for zoocore / ZooKeeper benchmark runs and
# prints one OK, WARN or INFO line per item. It only reads (/proc, /sys,
# ulimit, a one-second CPU sample); it changes nothing. tuning/README.md says
# why each item matters and how to fix it.
#
# Usage: tuning/check-host.sh [DATA_DIR]   (DATA_DIR: where the servers keep
#                                           their logs; default /tmp)
# Exit status: 0, or 1 if any WARN (so CI or a wrapper can insist on a tuned host).
set -uo pipefail

data_dir="${1:-/tmp}"
warnings=0

ok()   { printf 'OK    %-16s %s\n' "$1" "$2"; }
warn() { printf 'WARN  %-16s %s\n' "$1" "$2"; warnings=$((warnings + 1)); }
info() { printf 'INFO  %-16s %s\n' "$1" "$2"; }

read_first() { # read_first FILE : first line of FILE, or nothing
  [ -r "$1" ] && head -n 1 "$1" 2>/dev/null
}

# --- CPUs -------------------------------------------------------------------
cpus="$(nproc --all 2>/dev/null || getconf _NPROCESSORS_ONLN)"
online="$(nproc 2>/dev/null || echo "$cpus")"
if [ "$cpus" -ge 4 ]; then
  ok cpus "$cpus CPUs ($online usable by this shell)"
else
  warn cpus "$cpus CPUs: the load generator and the server share cores; pin them apart (taskset, zoocore.shards) or use a separate client host"
fi
isolated="$(read_first /sys/devices/system/cpu/isolated)"
nohz="$(read_first /sys/devices/system/cpu/nohz_full)"
info isolation "isolated CPUs: ${isolated:-none}; nohz_full: ${nohz:-none}"
numa="$(find /sys/devices/system/node -maxdepth 1 -name 'node[0-9]*' 2>/dev/null | wc -l)"
[ "$numa" -gt 1 ] && info numa "$numa NUMA nodes: keep a server and its NIC's IRQs on one node"

# --- load -------------------------------------------------------------------
busy_ticks() { # prints "busy total" jiffies from the cpu line of /proc/stat
  awk '/^cpu / { busy = $2 + $3 + $4 + $7 + $8 + $9; total = busy + $5 + $6; print busy, total }' /proc/stat
}
read -r busy0 total0 < <(busy_ticks)
sleep 1
read -r busy1 total1 < <(busy_ticks)
busy_cores="$(awk -v b=$((busy1 - busy0)) -v t=$((total1 - total0)) -v n="$cpus" \
  'BEGIN { if (t > 0) printf "%.2f", b / t * n; else print "0.00" }')"
loadavg="$(cut -d' ' -f1-3 /proc/loadavg)"
if awk -v c="$busy_cores" 'BEGIN { exit !(c <= 0.15) }'; then
  ok load "$busy_cores cores busy over 1 s; loadavg $loadavg"
else
  top="$(ps -eo pid,pcpu,comm --sort=-pcpu 2>/dev/null | sed -n '2,4p' | awk '{ printf "%s(%s%%) ", $3, $2 }')"
  warn load "$busy_cores cores busy over 1 s (loadavg $loadavg): benchmark numbers will be disturbed; top: $top"
fi

# --- memory: swap and transparent huge pages --------------------------------
swap_kb="$(awk '/^SwapTotal:/ { print $2 }' /proc/meminfo)"
swappiness="$(read_first /proc/sys/vm/swappiness)"
if [ "${swap_kb:-0}" -eq 0 ]; then
  ok swap "no swap"
elif [ "${swappiness:-60}" -le 10 ]; then
  ok swap "$((swap_kb / 1024)) MiB swap, vm.swappiness=$swappiness"
else
  warn swap "$((swap_kb / 1024)) MiB swap with vm.swappiness=$swappiness: a swapped-out JVM heap means long GC pauses (set vm.swappiness=1 or swapoff)"
fi
thp_file=/sys/kernel/mm/transparent_hugepage/enabled
thp="$(read_first "$thp_file" | sed -n 's/.*\[\(.*\)\].*/\1/p')"
thp_defrag="$(read_first /sys/kernel/mm/transparent_hugepage/defrag | sed -n 's/.*\[\(.*\)\].*/\1/p')"
case "$thp" in
  madvise|never) ok thp "enabled=$thp defrag=${thp_defrag:-?}" ;;
  always) warn thp "enabled=always (defrag=${thp_defrag:-?}): compaction stalls show in p99.9; use madvise (JVM: -XX:+UseTransparentHugePages)" ;;
  *) info thp "not available" ;;
esac

# --- locked memory and io_uring (zoocore's glommio runtime) -----------------
memlock="$(ulimit -l)"
if [ "$memlock" = unlimited ] || [ "$memlock" -ge 512 ]; then
  ok memlock "ulimit -l = $memlock KiB (zoocore needs >= 512)"
else
  warn memlock "ulimit -l = $memlock KiB: zoocore's io_uring rings need >= 512 KiB (ulimit -l unlimited, LimitMEMLOCK=, or limits.conf)"
fi
uring_disabled="$(read_first /proc/sys/kernel/io_uring_disabled)"
kernel="$(uname -r)"
case "$uring_disabled" in
  0) ok io_uring "enabled (kernel.io_uring_disabled=0, kernel $kernel)" ;;
  1) warn io_uring "kernel.io_uring_disabled=1: only root and kernel.io_uring_group may use io_uring" ;;
  2) warn io_uring "kernel.io_uring_disabled=2: io_uring is off, zoocore cannot start" ;;
  *)
    major="${kernel%%.*}"; rest="${kernel#*.}"; minor="${rest%%.*}"
    if [ "$major" -gt 5 ] || { [ "$major" -eq 5 ] && [ "$minor" -ge 8 ]; }; then
      ok io_uring "kernel $kernel (>= 5.8; no io_uring_disabled sysctl)"
    else
      warn io_uring "kernel $kernel: glommio needs io_uring from Linux 5.8"
    fi ;;
esac

# --- CPU frequency and clock ------------------------------------------------
governors="$(cat /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor 2>/dev/null | sort | uniq -c | awk '{ printf "%s%s x%s", sep, $2, $1; sep = ", " }')"
if [ -z "$governors" ]; then
  info governor "no cpufreq interface (a VM, or frequency fixed by firmware)"
elif [ "$governors" = "$(echo "$governors" | grep -E '^performance x[0-9]+$')" ]; then
  ok governor "$governors"
else
  warn governor "$governors: use performance (cpupower frequency-set -g performance) so latency does not pay for ramp-up"
fi
clocksource="$(read_first /sys/devices/system/clocksource/clocksource0/current_clocksource)"
case "$clocksource" in
  tsc|kvm-clock|arch_sys_counter) ok clocksource "$clocksource" ;;
  "") info clocksource "unknown" ;;
  *) warn clocksource "$clocksource: a slow clock source makes every timestamp (and the loadgen's latency) expensive" ;;
esac

# --- network sysctls --------------------------------------------------------
sysctl_value() { read_first "/proc/sys/$(echo "$1" | tr . /)"; }
somaxconn="$(sysctl_value net.core.somaxconn)"
if [ "${somaxconn:-0}" -ge 1024 ]; then
  ok somaxconn "net.core.somaxconn=$somaxconn"
else
  warn somaxconn "net.core.somaxconn=$somaxconn: connection storms overflow the accept queue (4096)"
fi
syn_backlog="$(sysctl_value net.ipv4.tcp_max_syn_backlog)"
if [ "${syn_backlog:-0}" -ge 1024 ]; then
  ok syn_backlog "net.ipv4.tcp_max_syn_backlog=$syn_backlog"
else
  warn syn_backlog "net.ipv4.tcp_max_syn_backlog=$syn_backlog: raise to 4096 for the churn workload"
fi
ports="$(sysctl_value net.ipv4.ip_local_port_range | tr -s '\t ' ' ')"
port_count="$(echo "$ports" | awk '{ print $2 - $1 + 1 }')"
if [ "${port_count:-0}" -ge 28000 ]; then
  ok port_range "net.ipv4.ip_local_port_range=$ports ($port_count ports)"
else
  warn port_range "net.ipv4.ip_local_port_range=$ports: session churn runs out of ephemeral ports (1024 65535)"
fi
tw_reuse="$(sysctl_value net.ipv4.tcp_tw_reuse)"
case "$tw_reuse" in
  1|2) ok tw_reuse "net.ipv4.tcp_tw_reuse=$tw_reuse" ;;
  *) warn tw_reuse "net.ipv4.tcp_tw_reuse=${tw_reuse:-?}: set 1 for the churn workload (TIME_WAIT sockets)" ;;
esac
slow_start="$(sysctl_value net.ipv4.tcp_slow_start_after_idle)"
if [ "$slow_start" = 0 ]; then
  ok slow_start "net.ipv4.tcp_slow_start_after_idle=0"
else
  warn slow_start "net.ipv4.tcp_slow_start_after_idle=${slow_start:-?}: bursts after idle restart from a small window (set 0; matters off loopback)"
fi

# --- interrupts -------------------------------------------------------------
if pgrep -x irqbalance >/dev/null 2>&1; then
  info irqbalance "running: it moves NIC IRQs onto the cores you pinned servers to; stop it or ban those cores (IRQBALANCE_BANNED_CPULIST)"
else
  ok irqbalance "not running (IRQ affinity stays where you set it)"
fi

# --- disk under the data directory -------------------------------------------
device="$(df --output=source "$data_dir" 2>/dev/null | tail -n 1)"
filesystem="$(df --output=fstype "$data_dir" 2>/dev/null | tail -n 1 | tr -d ' ')"
block="$(basename "$(readlink -f "$device" 2>/dev/null || echo "$device")")"
parent="$block"
if [ -e "/sys/class/block/$block/partition" ]; then
  parent="$(basename "$(dirname "$(readlink -f "/sys/class/block/$block")")")"
fi
scheduler="$(read_first "/sys/block/$parent/queue/scheduler" | sed -n 's/.*\[\(.*\)\].*/\1/p')"
rotational="$(read_first "/sys/block/$parent/queue/rotational")"
write_cache="$(read_first "/sys/block/$parent/queue/write_cache")"
if [ -z "$scheduler" ]; then
  info disk "$data_dir on $device ($filesystem): no block queue found (tmpfs/overlay?) - fsync costs will not be a disk's"
elif [ "$rotational" = 1 ] && [[ "$parent" == vd* || "$parent" == xvd* ]]; then
  info disk "$data_dir on $parent ($filesystem), a virtual disk, scheduler $scheduler: it reports rotational whatever backs it; measure fsync (e.g. fio --fsync=1)"
elif [ "$rotational" = 1 ]; then
  warn disk "$data_dir on $parent ($filesystem), rotational, scheduler $scheduler: fsync latency is a seek; use an SSD for the logs"
else
  ok disk "$data_dir on $parent ($filesystem), scheduler $scheduler, write cache ${write_cache:-?}"
fi
if [ "$filesystem" = tmpfs ]; then
  warn disk_fsync "$data_dir is tmpfs: fsync is free there, so write numbers do not reflect a disk"
fi

# --- tools ------------------------------------------------------------------
if command -v java >/dev/null 2>&1; then
  info java "$(java -version 2>&1 | head -n 1)"
else
  info java "not installed (needed for the ZooKeeper side: apt-get install default-jre-headless zookeeper)"
fi
paranoid="$(read_first /proc/sys/kernel/perf_event_paranoid)"
if command -v perf >/dev/null 2>&1; then
  info perf "installed; kernel.perf_event_paranoid=${paranoid:-?}"
else
  info perf "not installed (profiling: apt-get install linux-perf)"
fi

echo "$warnings warning(s)"
[ "$warnings" -eq 0 ]
