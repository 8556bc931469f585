#!/usr/bin/env bash
# Benchmark: a kvm_instance's root disk against the host's own disk, with etcd's numbers.
#
# etcd wants a 99th-percentile WAL fsync under 10 ms. For each disk configuration of the matrix one
# guest is booted through the provider (`terraform apply` of a copy-on-write root volume and a
# kvm_instance with the disk knobs set, wait_for = "ssh"), then over SSH, on its root filesystem:
#   1. fio's etcd-style job, as etcd's docs give it: sequential 2,300-byte writes with an fdatasync
#      after each (`--rw=write --ioengine=sync --fdatasync=1 --bs=2300 --size=22m`), capped at
#      BENCH_FIO_RUNTIME seconds (default 30): fsync latency p50 / p99 / p99.9 and write IOPS;
#   2. a single-member etcd (Debian's etcd-server 3.4) with its data on that disk and
#      `etcdctl check perf --load=s` (60 s) against it: pass/fail, throughput, slowest request and
#      stddev as etcdctl reports them, and etcd's own WAL fsync histogram from /metrics
#      (etcd_disk_wal_fsync_duration_seconds: count, mean, the bucket the p99 falls in).
# Right before each guest's fio job the same fio job runs on the host, in a directory of the pool
# (the filesystem the guest's qcow2 lives on): the floor, measured in the same run. The ratio is
# the guest's fsync p99 over the median of the host's.
#
# The matrix (names as in the results): defaults (what the provider does with no disk knob set:
# virtio-blk, cache none, io threads, an I/O thread, discard unmap; in the results of 2026-12-06 the
# defaults still had io native, and their io_threads row is what became the default), io_native,
# io_uring, io_threads (on request only: it is the defaults now), cache_writeback (with io threads:
# native AIO needs O_DIRECT, the provider refuses it),
# cache_directsync, no_iothread, scsi (virtio-scsi), nvme (only where the host's libvirt offers an
# emulated NVMe bus: libvirt >= 11.5; otherwise recorded as not offered), then defaults_again (the
# defaults once more, last: how much the figures drift within one run). Every knob is set through
# the provider's schema; nothing is defined with virsh by hand.
#
# The guests boot the benchmark's flavour of the test image (scripts/guest-image.sh with
# KVM_GUEST_IMAGE_PACKAGES=fio,etcd-server,etcd-client; the tests' image is not touched), one at a
# time, 1 vCPU, 1 GiB, under TCG unless KVM_ACCELERATOR=kvm (this machine's /dev/kvm cannot run guests).
# Host side: fio (installed from Debian when missing); gnuplot draws the PNG when it is installed.
# The pool (and so the guests' disks and the host's fio job) is a directory under BENCH_POOL_PARENT
# (default /var/lib/libvirt): point it at the filesystem to measure, e.g. an NVMe mount.
#
# Needs the test libvirtd (scripts/libvirt.sh; KVM_TEST_NETNS, default kvmtest).
# Usage: acceptance-tests/bench/instance-disk-vs-host.sh [CONFIG...]   (default: the whole matrix)
#   A CONFIG may carry a tag to measure it again in the same run: `defaults io_uring defaults@2 io_uring@2`.
#   BENCH_ETCD=0 skips the etcd part; BENCH_FIO_RUNTIME caps the fio job (seconds, default 30).
# Results: BENCH_OUT.json and BENCH_OUT.png (default target/bench/instance-disk-vs-host).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/lib.sh"
source "$here/lib.sh"
root=$(repo_root)
setup_tools
accel=${KVM_ACCELERATOR:-qemu}
runtime=${BENCH_FIO_RUNTIME:-30}
all=(defaults io_native io_uring cache_writeback cache_directsync no_iothread scsi nvme defaults_again)
configs=("$@")
((${#configs[@]})) || configs=("${all[@]}")

# config_disk NAME: the disk block's knobs (HCL, `\n` between lines) and the root device, `|`-separated.
config_disk() {
  case $1 in
  defaults | defaults_again) printf '|/dev/vda' ;;
  io_threads) printf 'io = "threads"|/dev/vda' ;;
  io_uring) printf 'io = "io_uring"|/dev/vda' ;;
  io_native) printf 'io = "native"|/dev/vda' ;;
  cache_writeback) printf 'cache = "writeback"\\n    io = "threads"|/dev/vda' ;;
  cache_directsync) printf 'cache = "directsync"|/dev/vda' ;;
  no_iothread) printf 'iothread = false|/dev/vda' ;;
  scsi) printf 'bus = "scsi"|/dev/sda' ;;
  nvme) printf 'bus = "nvme"|/dev/nvme0n1' ;;
  *)
    echo "unknown configuration $1 (known: ${all[*]})" >&2
    return 1
    ;;
  esac
}
for c in "${configs[@]}"; do config_disk "${c%%@*}" >/dev/null; done

if ! command -v fio >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fio >&2
fi
image=$(KVM_GUEST_IMAGE_PACKAGES=fio,etcd-server,etcd-client bash "$root/scripts/guest-image.sh" | tail -n1)
bin=$(release_provider)
work=$(mktemp -d /var/tmp/kvm-bench.XXXXXX)
pool="kvmbench-d$$"
net="kvmbench-n$$"
pool_dir="${BENCH_POOL_PARENT:-/var/lib/libvirt}/$pool"
bench_domains=kvmbench-disk-
bench_cleanup_first() {
  local d
  for d in "$work"/tf-*/; do
    [[ -f "$d/terraform.tfstate" ]] && tf "$d" destroy -auto-approve >/dev/null 2>&1
  done
  rm -rf "$pool_dir/host-fio"
}
bench_lab "10.205.$(($$ % 250))" "$image"
provider_mirror "$bin" "$work/tf"

# etcd's fio job (etcd's docs: "Using Fio to tell whether your storage is fast enough for etcd").
fio_job=(--name=etcd --rw=write --ioengine=sync --fdatasync=1 --bs=2300 --size=22m --runtime="$runtime" --output-format=json)

# fio_summary FILE: p50 p99 p99.9 (ms) of fdatasync, write IOPS, number of fdatasyncs.
fio_summary() {
  python3 - "$1" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
job = json.loads(text[text.index("{"):])["jobs"][0]
sync = job["sync"]["lat_ns"]
p = sync["percentile"]
print(*(f"{p[k] / 1e6:.3f}" for k in ("50.000000", "99.000000", "99.900000")), f"{job['write']['iops']:.1f}", sync["N"])
PY
}

load() { cut -d' ' -f1 /proc/loadavg; }

# qemu_cpu NAME: CPU ticks (1/100 s) the guest's QEMU threads used so far, by kind: vCPU threads
# (the guest's code: translated under TCG, native under KVM), I/O threads, the main loop, the
# thread pool's workers (io = "threads", and what QEMU offloads) and the rest.
qemu_cpu() {
  local pid t comm ticks vcpu=0 io=0 main=0 worker=0 other=0
  pid=$(pgrep -f "guest=$1,") || { echo "0 0 0 0 0"; return; }
  for t in /proc/"$pid"/task/*; do
    comm=$(cat "$t/comm")
    ticks=$(awk '{print $14 + $15}' "$t/stat")
    case $comm in
    CPU*) vcpu=$((vcpu + ticks)) ;;
    "IO iothread"*) io=$((io + ticks)) ;;
    qemu-system-*) main=$((main + ticks)) ;;
    worker) worker=$((worker + ticks)) ;;
    *) other=$((other + ticks)) ;;
    esac
  done
  echo "$vcpu $io $main $worker $other"
}

# The host floor: the same job in a directory of the pool.
host_fio() {
  rm -rf "$pool_dir/host-fio"
  mkdir -p "$pool_dir/host-fio"
  fio "${fio_job[@]}" --directory="$pool_dir/host-fio" >"$1"
  rm -rf "$pool_dir/host-fio"
}

tf_dir() { # tf_dir DIR NAME KNOBS ROOTDEV
  mkdir -p "$1"
  {
    kvm_required_providers
    cat <<TF
provider "kvm" {
  uri = "qemu:///system"
}
resource "kvm_volume" "root" {
  name        = "$2-root.qcow2"
  pool        = "$pool"
  base_volume = "base.qcow2"
}
resource "kvm_instance" "vm" {
  name        = "$2"
  accelerator = "$accel"
  vcpu        = 1
  memory      = "1GiB"
  kernel      = "$image/vmlinuz"
  initrd      = "$image/initrd.img"
  cmdline     = "console=ttyS0 root=$4 rw"
  disk {
    volume = kvm_volume.root.name
    pool   = "$pool"
    $(printf '%b' "$3")
  }
  network_interface {
    network = "$net"
  }
  cloud_init {
    user_data           = "#cloud-config\\ndisable_root: false\\n"
    ssh_authorized_keys = ["$client_pub"]
  }
  wait_for         = "ssh"
  shutdown_timeout = "1s"
}
output "ip" { value = kvm_instance.vm.ip_address }
output "known_hosts" { value = kvm_instance.vm.known_hosts }
TF
  } >"$1/main.tf"
  (cd "$1" && in_ns "${TERRAFORM:-terraform}" init -input=false >/dev/null)
}

# What runs in the guest, as root, on its root filesystem.
guest_fio=$(printf '%q ' "${fio_job[@]}")
read -r -d '' guest_etcd <<'SH' || true
set -u
d=/var/lib/kvm-bench/etcd
rm -rf "$d"
systemd-run --quiet --unit=kvm-bench-etcd etcd --name bench --data-dir "$d" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster bench=http://127.0.0.1:2380
for _ in $(seq 120); do etcdctl --endpoints=127.0.0.1:2379 endpoint health >/dev/null 2>&1 && break; sleep 0.5; done
etcdctl --endpoints=127.0.0.1:2379 check perf --load=s >/var/lib/kvm-bench/perf.txt 2>&1
echo "exit $?"
# Without the progress bar's redraws.
tr '\r' '\n' </var/lib/kvm-bench/perf.txt | grep -v -e '^[[:space:]]*$' -e '[0-9] / [0-9]' | tail -n 8 | sed 's/^/out /'
python3 - <<'PY'
import json, urllib.request
text = urllib.request.urlopen("http://127.0.0.1:2379/metrics").read().decode()
def histogram(name):
    buckets, total, count = [], 0.0, 0
    for line in text.splitlines():
        if line.startswith(name + "_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), int(float(line.split()[-1]))))
        elif line.startswith(name + "_sum"):
            total = float(line.split()[-1])
        elif line.startswith(name + "_count"):
            count = int(float(line.split()[-1]))
    p99 = next((le for le, c in sorted(buckets) if count and c >= 0.99 * count), None)
    return {"count": count, "mean_ms": round(total / count * 1e3, 3) if count else None,
            "p99_le_ms": None if p99 is None or p99 == float("inf") else round(p99 * 1e3, 3)}
print("metrics " + json.dumps({"wal_fsync": histogram("etcd_disk_wal_fsync_duration_seconds"),
                               "backend_commit": histogram("etcd_disk_backend_commit_duration_seconds")}))
PY
systemctl stop kvm-bench-etcd
SH

# etcd_summary FILE: JSON of the check perf verdict and figures, and etcd's histograms.
etcd_summary() {
  python3 - "$1" <<'PY'
import json, re, sys
out = {"verdict": "FAIL", "checks": []}
for line in open(sys.argv[1], errors="replace"):
    line = line.strip()
    if line.startswith("out "):
        out.setdefault("output_tail", []).append(line[4:])
        line = line[4:]
    if line.startswith("metrics "):
        out.update(json.loads(line[8:]))
    elif line.startswith("exit "):
        out["exit_code"] = int(line[5:])
    elif line in ("PASS", "FAIL"):
        out["verdict"] = line
    elif line == "skipped (BENCH_ETCD=0)":
        out["verdict"] = "SKIPPED"
    elif line.startswith(("PASS", "FAIL", "Slowest", "Stddev")):
        # etcd 3.4 prints e.g. "PASS: Throughput is 150 writes/s", "FAIL: Throughput too low: 62 writes/s",
        # "Slowest request took too long: 2.28s", "PASS: Stddev is 0.01s".
        out["checks"].append(line)
        m = re.search(r"Throughput (?:is|too low:) (\d+)", line)
        if m: out["throughput_writes_s"] = int(m.group(1))
        m = re.search(r"Slowest request took (?:too long: )?([\d.]+)s", line)
        if m: out["slowest_ms"] = round(float(m.group(1)) * 1e3, 3)
        m = re.search(r"Stddev (?:is|too high:) ([\d.]+)s", line)
        if m: out["stddev_ms"] = round(float(m.group(1)) * 1e3, 3)
print(json.dumps(out))
PY
}

nvme_offered() {
  virsh domcapabilities --virttype "$accel" | sed -n "/<enum name='bus'>/,/<\/enum>/p" | grep -q '<value>nvme</value>'
}

rows="$work/rows.jsonl"
: >"$rows"
for c in "${configs[@]}"; do
  IFS='|' read -r knobs dev < <(config_disk "${c%%@*}"; echo)
  name="kvmbench-disk-${c//[_@]/-}"
  d="$work/tf-$c"
  if [[ ${c%%@*} == nvme ]] && ! nvme_offered; then
    echo "[bench] $c: the host's libvirt offers no emulated NVMe bus (libvirt $(virsh version | awk '/libvirt/ {print $NF; exit}')); skipped" >&2
    printf '{"config":"%s","skipped":"no emulated NVMe disk bus in this libvirt (domcapabilities); libvirt >= 11.5 has it"}\n' "$c" >>"$rows"
    continue
  fi
  echo "[bench] $c: booting $name (load $(load))" >&2
  tf_dir "$d" "$name" "$knobs" "$dev"
  t0=$(now)
  if ! tf "$d" apply -auto-approve >"$d/apply.log" 2>&1; then
    tail -n 20 "$d/apply.log" >&2
    printf '{"config":"%s","failed":"terraform apply failed"}\n' "$c" >>"$rows"
    tf "$d" destroy -auto-approve >/dev/null 2>&1 || true
    continue
  fi
  boot=$(div "$(now) - $t0" 1)
  ip=$(cd "$d" && "${TERRAFORM:-terraform}" output -raw ip)
  (cd "$d" && "${TERRAFORM:-terraform}" output -raw known_hosts) >"$d/known_hosts"
  gssh() { in_ns ssh -q -i "$work/client" -o BatchMode=yes -o UserKnownHostsFile="$d/known_hosts" -o StrictHostKeyChecking=yes "root@$ip" "$@"; }
  xml=$(virsh dumpxml "$name")
  driver=$(grep -m1 "<driver name='qemu' type='qcow2'" <<<"$xml" | sed 's/^ *//')
  echo "[bench] $c: up in ${boot}s, $driver" >&2
  gssh 'systemctl stop etcd.service 2>/dev/null; rm -rf /var/lib/kvm-bench; mkdir -p /var/lib/kvm-bench/fio'

  load0=$(load)
  host_fio "$d/host-fio.json"
  read -r hp50 hp99 hp999 hiops hn < <(fio_summary "$d/host-fio.json")
  echo "[bench] $c: host fsync p99 ${hp99} ms (${hiops} IOPS)" >&2
  cpu0=$(qemu_cpu "$name")
  gssh "fio $guest_fio --directory=/var/lib/kvm-bench/fio; rm -rf /var/lib/kvm-bench/fio" >"$d/guest-fio.json"
  cpu1=$(qemu_cpu "$name")
  read -r gp50 gp99 gp999 giops gn < <(fio_summary "$d/guest-fio.json")
  load1=$(load)
  echo "[bench] $c: guest fsync p50 ${gp50} p99 ${gp99} p99.9 ${gp999} ms, ${giops} IOPS, $gn writes (load $load1)" >&2
  if [[ ${BENCH_ETCD:-1} == 1 ]]; then
    gssh 'cat >/var/lib/kvm-bench/etcd.sh' <<<"$guest_etcd"
    gssh bash /var/lib/kvm-bench/etcd.sh >"$d/etcd.txt" 2>&1 || true
  else
    echo 'out skipped (BENCH_ETCD=0)' >"$d/etcd.txt"
  fi
  etcd=$(etcd_summary "$d/etcd.txt")
  echo "[bench] $c: etcd $etcd" >&2
  load2=$(load)
  python3 - "$c" "$knobs" "$driver" "$boot" "$load0" "$load1" "$load2" \
    "$hp50" "$hp99" "$hp999" "$hiops" "$hn" "$gp50" "$gp99" "$gp999" "$giops" "$gn" "$etcd" "$cpu0" "$cpu1" >>"$rows" <<'PY'
import json, sys
a = sys.argv[1:]
f = lambda x: float(x)
print(json.dumps({
    "config": a[0], "knobs": a[1].replace("\\n    ", "; "), "driver_xml": a[2],
    "apply_until_ssh_s": round(f(a[3]), 1), "load_before": f(a[4]), "load_after_fio": f(a[5]), "load_after_etcd": f(a[6]),
    "host": {"fsync_p50_ms": f(a[7]), "fsync_p99_ms": f(a[8]), "fsync_p99_9_ms": f(a[9]), "iops": f(a[10]), "writes": int(a[11])},
    "guest": {"fsync_p50_ms": f(a[12]), "fsync_p99_ms": f(a[13]), "fsync_p99_9_ms": f(a[14]), "iops": f(a[15]), "writes": int(a[16])},
    "etcd_check_perf": json.loads(a[17]),
    "qemu_cpu_s_during_guest_fio": dict(zip(("vcpu", "iothread", "main_loop", "workers", "other"),
        (round((int(y) - int(x)) / 100, 2) for x, y in zip(a[18].split(), a[19].split())))),
}))
PY
  tf "$d" destroy -auto-approve >/dev/null
  rm -f "$d/terraform.tfstate"
done

out=${BENCH_OUT:-$root/target/bench/instance-disk-vs-host}
mkdir -p "$(dirname "$out")"
json="$out.json"
python3 - "$rows" "$accel" "$runtime" "$(virsh version | awk '/libvirt/ {print $NF; exit}')" \
  "$(virsh version | awk '/Running hypervisor/ {print $NF; exit}')" "$(fio --version)" "$(uname -r)" "$(nproc)" >"$json" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
measured = [r for r in rows if "guest" in r]
floor = statistics.median([r["host"]["fsync_p99_ms"] for r in measured]) if measured else None
# Rows of one configuration (tagged repeats, `defaults_again`) are pooled by their base name.
base = lambda r: "defaults" if r["config"] == "defaults_again" else r["config"].split("@")[0]
defaults = [r["guest"]["fsync_p99_ms"] for r in measured if base(r) == "defaults"]
defaults_p99 = statistics.median(defaults) if defaults else None
for r in measured:
    r["ratio_p99_to_host_floor"] = round(r["guest"]["fsync_p99_ms"] / floor, 3)
    r["ratio_p99_to_own_host_run"] = round(r["guest"]["fsync_p99_ms"] / r["host"]["fsync_p99_ms"], 3)
    if defaults_p99:
        r["p99_vs_defaults"] = round(r["guest"]["fsync_p99_ms"] / defaults_p99, 3)
by_config = {}
for r in measured:
    by_config.setdefault(base(r), []).append(r["guest"]["fsync_p99_ms"])
summary = {c: {"runs": len(v), "guest_fsync_p99_ms_median": statistics.median(v),
               "ratio_to_host_floor": round(statistics.median(v) / floor, 3),
               "vs_defaults": round(statistics.median(v) / defaults_p99, 3) if defaults_p99 else None}
           for c, v in by_config.items()}
print(json.dumps({
    "accelerator": sys.argv[2], "fio_runtime_cap_s": int(sys.argv[3]), "libvirt": sys.argv[4], "qemu": sys.argv[5],
    "fio": sys.argv[6], "host_kernel": sys.argv[7], "host_cpus": int(sys.argv[8]),
    "host_floor_fsync_p99_ms": floor,
    "host_floor_runs_p99_ms": [r["host"]["fsync_p99_ms"] for r in measured],
    "targets": {"defaults_p99_ratio_max": 1.3, "better_than_defaults_by_max": 0.10},
    "by_config": summary,
    "rows": rows,
}, indent=1))
PY

python3 - "$json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print(f"\naccelerator {j['accelerator']}, host floor fsync p99 {j['host_floor_fsync_p99_ms']} ms (median of {len(j['host_floor_runs_p99_ms'])} host runs)")
print(f"{'config':18} {'p50':>7} {'p99':>7} {'p99.9':>7} {'IOPS':>7} {'host p99':>8} {'ratio':>6} {'vs def':>6} {'etcd':>5} {'load':>5}")
for r in j["rows"]:
    if "guest" not in r:
        print(f"{r['config']:18} {r.get('skipped') or r.get('failed')}")
        continue
    g, h, e = r["guest"], r["host"], r["etcd_check_perf"]
    print(f"{r['config']:18} {g['fsync_p50_ms']:7.2f} {g['fsync_p99_ms']:7.2f} {g['fsync_p99_9_ms']:7.2f} {g['iops']:7.0f} "
          f"{h['fsync_p99_ms']:8.2f} {r['ratio_p99_to_host_floor']:6.2f} {r.get('p99_vs_defaults', 0):6.2f} {e['verdict']:>5} {r['load_after_fio']:5.2f}")
PY

# The plot: guest/host ratio of the fsync p99 per configuration, with the 1.3 target.
png="${json%.json}.png"
if command -v gnuplot >/dev/null; then
  python3 - "$json" >"$work/plot.dat" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
for r in j["rows"]:
    if "guest" in r:
        print(f'"{r["config"]}" {r["ratio_p99_to_host_floor"]} {r["guest"]["fsync_p99_ms"]}')
PY
  floor=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["host_floor_fsync_p99_ms"])' "$json")
  gnuplot <<GP
set terminal pngcairo noenhanced size 900,520 font "sans,10"
set output "$png"
set title "Guest fsync p99 / host floor (fio etcd job; host p99 $floor ms; accelerator $accel)"
set style fill solid 0.6 border -1
set boxwidth 0.6
stats "$work/plot.dat" using 2 nooutput
set yrange [0:(STATS_max > 1.3 ? STATS_max : 1.3) * 1.15]
set offsets 0.5, 0.5, 0, 0
set grid ytics
set ylabel "guest p99 / host p99"
set xtics rotate by -30
set key top left
plot "$work/plot.dat" using 0:2:xtic(1) with boxes title "ratio", \
     "" using 0:2:(sprintf("%.1f ms", \$3)) with labels offset 0,0.8 notitle, \
     1.3 with lines dt 2 lw 2 title "target 1.3", 1 with lines lw 1 title "host"
GP
  echo "plot: $png" >&2
else
  echo "gnuplot not installed: no plot (apt-get install gnuplot-nox)" >&2
fi
echo "results: $json" >&2
