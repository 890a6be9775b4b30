#!/usr/bin/env bash
# Self-test of marginet's distributed end-of-day run under Slurm, on this one machine, as root.
#
#   scripts/slurm/selftest.sh                          # from any directory
#   MARGINET=/path/to/marginet scripts/slurm/selftest.sh
#   KEEP=1 scripts/slurm/selftest.sh                   # keep the temporary folder even on a pass
#
# It installs slurm-wlm and munge when missing (apt-get), then starts a private single-node
# Slurm in a temporary folder: its own munged (own key and socket), slurmctld and slurmd on
# localhost with free ports, no cgroups (proctrack/linuxproc, task/none), MPI through PMIx. It
# leaves the machine's own Slurm/munge configuration (if any) alone. Then:
#   a. single-process reference runs of `marginet margin` on examples/ (hvar with
#      examples/returns.csv; span16 and stress.json with examples/collateral.csv);
#   b. the same under `srun --mpi=pmix -n 2 ... --partitions 3`: --stats must report 2 ranks
#      and the output must be byte-identical (cmp);
#   c. sbatch: scripts/slurm/eod.sbatch (2 tasks) twice at once, one of them made to fail at the
#      end (its OUT is a folder, so rank 0 cannot write it after all 3 partitions are
#      checkpointed), and scripts/slurm/stress-grid.sbatch as a 4-task array (--array=0-3) over 4
#      stress configs made from examples/models/stress.json (moves and vol shifts scaled by 0.5,
#      1, 1.5, 2); then the failed run, one checkpoint removed, resubmitted with RESUME=1. Every
#      job but the failing one must complete; every output must have the header and one row per
#      account; both eod outputs must equal the single-process span16 run (the resumed one having
#      taken 2 partitions from checkpoints), the x1 stress output the single-process stress run;
#   d. stops every daemon it started (also on failure or Ctrl-C) and prints PASS/FAIL with the
#      time of each step. Exit status 0 only on a pass.
# The temporary folder (configuration, daemon logs, job outputs) is removed on a pass and kept
# on a failure; its path is printed.
#
# MARGINET: the marginet binary, built with MPI (-DMARGINET_MPI=ON, Open MPI installed); default
# the first of build/service/marginet and build-cpu/service/marginet whose `margin --help` lists
# --partitions.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

t_start=$(date +%s.%N)
say() { echo "selftest: $*"; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# --- steps and the summary ------------------------------------------------------------------
steps=(setup a-reference b-srun c-sbatch d-teardown)
declare -A step_result=() step_time=()
current=""
step_t0=""
begin() { current=$1; step_t0=$(date +%s.%N); echo; say "=== $1: $2"; }
done_step() { step_result[$current]=PASS; step_time[$current]=$(elapsed "$step_t0"); current=""; }
fail() { echo "selftest: FAIL: $*" >&2; exit 1; }

# --- the marginet binary ------------------------------------------------------------------------
has_partitions() { "$1" margin --help 2>/dev/null | grep -q -- '--partitions'; }
if [ -z "${MARGINET:-}" ]; then
  for c in build/service/marginet build-cpu/service/marginet; do
    if [ -x "$c" ] && has_partitions "$c"; then MARGINET=$c; break; fi
  done
  if [ -z "${MARGINET:-}" ]; then
    for c in build/service/marginet build-cpu/service/marginet; do
      if [ -x "$c" ]; then MARGINET=$c; break; fi
    done
  fi
fi
[ -n "${MARGINET:-}" ] || { echo "selftest: FAIL: no marginet binary (build/ or build-cpu/service/marginet); set MARGINET=path" >&2; exit 1; }
case "$MARGINET" in /*) ;; *) MARGINET="$root/$MARGINET" ;; esac
[ -x "$MARGINET" ] || { echo "selftest: FAIL: MARGINET=$MARGINET is not an executable" >&2; exit 1; }
if ! has_partitions "$MARGINET"; then
  echo "selftest: FAIL: $MARGINET has no --partitions under 'margin --help': it predates the" \
       "distributed run (rebuild with -DMARGINET_MPI=ON)" >&2
  exit 1
fi
[ "$(id -u)" -eq 0 ] || { echo "selftest: FAIL: run as root (slurmd and a private munged need it)" >&2; exit 1; }

# Run inside a Slurm job or with sbatch/srun defaults set, those would steer our own jobs.
for v in $(compgen -e | grep -E '^(SLURM|SBATCH|SRUN|SALLOC)_' || true); do unset "$v"; done
# Open MPI refuses root without these; sbatch/srun pass the environment on to the jobs.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

work=$(mktemp -d /tmp/marginet-slurm-selftest.XXXXXX)
mark="MARGINET_SLURM_SELFTEST=$work"   # in the daemons' environment: finds what they left running
pids=()      # daemons we started, in start order
names=()

stop_all() {
  local rc=$? i pid n
  set +e
  trap - EXIT INT TERM
  if [ -n "$current" ]; then
    step_result[$current]=FAIL
    step_time[$current]=$(elapsed "$step_t0")
  fi
  [ "$rc" -ne 0 ] || rc=0
  local t_down
  t_down=$(date +%s.%N)
  echo
  say "=== d-teardown: stopping what this test started"
  if [ ${#pids[@]} -gt 0 ] && [ -f "$work/etc/slurm.conf" ]; then
    # Jobs first, so no task outlives its slurmd.
    if squeue -h -o %i 2>/dev/null | grep -q .; then
      say "cancelling jobs: $(squeue -h -o %i | tr '\n' ' ')"
      scancel --user=root 2>/dev/null
      for _ in $(seq 1 30); do squeue -h -o %i 2>/dev/null | grep -q . || break; sleep 0.5; done
    fi
  fi
  for (( i=${#pids[@]}-1; i>=0; i-- )); do
    pid=${pids[$i]}; n=${names[$i]}
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then say "$n ($pid) ignored SIGTERM: SIGKILL"; kill -KILL "$pid" 2>/dev/null; fi
      wait "$pid" 2>/dev/null
      say "stopped $n (pid $pid)"
    fi
  done
  # Anything else the daemons started (slurmstepd, job tasks) carries the mark in its environment.
  local left=()
  for pid in $(left_running); do left+=("$pid"); done
  if [ ${#left[@]} -gt 0 ]; then
    say "still running from this test: ${left[*]}: SIGKILL"
    for pid in "${left[@]}"; do ps -o pid=,args= -p "$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null; done
    sleep 0.5
  fi
  left=()
  for pid in $(left_running); do left+=("$pid"); done
  if [ ${#left[@]} -eq 0 ]; then
    step_result[d-teardown]=PASS
  else
    step_result[d-teardown]=FAIL; say "processes left running: ${left[*]}"; rc=1
  fi
  step_time[d-teardown]=$(elapsed "$t_down")

  local verdict=PASS s
  for s in "${steps[@]}"; do [ "${step_result[$s]:-}" = PASS ] || verdict=FAIL; done
  [ "$rc" -eq 0 ] || verdict=FAIL
  if [ "$verdict" = FAIL ]; then
    for f in slurmctld.log slurmd.log munged.log; do
      if [ -s "$work/log/$f" ]; then echo "--- last lines of $work/log/$f"; tail -n 15 "$work/log/$f"; fi
    done
  fi
  echo
  echo "==================== marginet Slurm selftest: $verdict ===================="
  echo "  binary:  ${binary:-$MARGINET}${version:+ ($version)}"
  echo "  slurm:   $(sinfo --version 2>/dev/null || echo '?'), $(nproc) CPUs, node localhost"
  for s in "${steps[@]}"; do
    printf '  %-12s %-8s %s\n' "$s" "${step_result[$s]:-not run}" "${step_time[$s]:+${step_time[$s]} s}"
  done
  printf '  %-12s %-8s %s s\n' total "$verdict" "$(elapsed "$t_start")"
  if [ "$verdict" = PASS ] && [ "${KEEP:-0}" != 1 ]; then
    rm -rf "$work"
  else
    echo "  files:   $work (configuration, daemon logs in log/, job outputs in jobs/)"
  fi
  [ "$verdict" = PASS ] && exit 0
  exit 1
}
left_running() {
  local p
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" != $$ ] || continue
    if { tr '\0' '\n' < "/proc/$p/environ"; } 2>/dev/null | grep -qxF "$mark"; then echo "$p"; fi
  done
}
trap stop_all EXIT
trap 'echo; say "interrupted (SIGINT)"; exit 130' INT
trap 'echo; say "interrupted (SIGTERM)"; exit 143' TERM

# Starts a daemon in the foreground of a background job, so its pid is ours to stop.
start_daemon() {
  local name=$1; shift
  env "$mark" "$@" >"$work/log/$name.out" 2>&1 &
  pids+=($!); names+=("$name")
  say "started $name (pid $!)"
}
wait_for() {  # wait_for SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s
  local limit=$1 what=$2 t0; shift 2
  t0=$(date +%s)
  until "$@" >/dev/null 2>&1; do
    [ $(( $(date +%s) - t0 )) -lt "$limit" ] || fail "$what: not after ${limit}s"
    local i
    for i in "${!pids[@]}"; do
      kill -0 "${pids[$i]}" 2>/dev/null || fail "$what: ${names[$i]} exited (see $work/log/${names[$i]}.out and .log)"
    done
    sleep 0.2
  done
}

# =================================================================================================
begin setup "Slurm and munge on localhost (folder $work)"
need=()
for c in slurmctld slurmd munged munge unmunge srun sbatch sinfo squeue scontrol scancel; do
  command -v "$c" >/dev/null || need+=("$c")
done
if [ ${#need[@]} -gt 0 ]; then
  say "missing ${need[*]}: installing slurm-wlm and munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >"$work/apt.log" 2>&1 ||
    { tail -n 20 "$work/apt.log"; fail "apt-get install slurm-wlm munge"; }
fi
for c in python3 cmp; do command -v "$c" >/dev/null || fail "$c is needed"; done
mkdir -p "$work"/{bin,etc,munge,state,spool,tmp,log,run,jobs,ref,srun,stress,out}
# A copy of the binary, so a rebuild while the test runs cannot swap it half-way.
cp "$MARGINET" "$work/bin/marginet"
binary=$MARGINET
export MARGINET="$work/bin/marginet"   # also for the batch jobs (sbatch passes the environment on)
version=$("$MARGINET" --version | sed -n '1p;2s/^revision: /revision /p' | paste -sd' ') ||
  fail "the copy of $binary does not run"
say "marginet: $binary ($version), run from a copy in $work/bin"
chmod 755 "$work/munge"   # munged wants its socket folder reachable by all

# Ports nobody listens on, so a Slurm already on this machine (6817/6818) is no obstacle.
read -r ctld_port slurmd_port < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
cpus=$(nproc)
mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 }' /proc/meminfo)

# munged with its own key and socket.
dd if=/dev/urandom of="$work/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$work/munge/munge.key"
start_daemon munged munged --foreground --force --socket="$work/munge/munge.socket" \
  --key-file="$work/munge/munge.key" --pid-file="$work/munge/munged.pid" \
  --log-file="$work/log/munged.log" --seed-file="$work/munge/munged.seed"
munge_ok() { munge --socket="$work/munge/munge.socket" -n | unmunge --socket="$work/munge/munge.socket"; }
wait_for 15 "munged answering" munge_ok

cat >"$work/etc/slurm.conf" <<EOF
# Single-node Slurm for scripts/slurm/selftest.sh: localhost only, no cgroups, no accounting.
ClusterName=marginet-selftest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$work/munge/munge.socket
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool/slurmd
TmpFS=$work/tmp
SlurmctldPidFile=$work/run/slurmctld.pid
SlurmdPidFile=$work/run/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$work/etc/plugstack.conf
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$work/log/jobcomp.txt
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=600
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=selftest Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
: >"$work/etc/plugstack.conf"
export SLURM_CONF="$work/etc/slurm.conf"
say "slurm.conf: localhost, $cpus CPUs, RealMemory=$mem_mb MB, ports $ctld_port/$slurmd_port"

start_daemon slurmctld slurmctld -D -i -f "$SLURM_CONF"
wait_for 30 "slurmctld answering" scontrol ping
start_daemon slurmd slurmd -D -f "$SLURM_CONF" -N localhost
node_idle() { sinfo -h -n localhost -o %T | grep -qx 'idle'; }
wait_for 60 "node localhost idle" node_idle
say "sinfo: $(sinfo -h -o '%P %a %D %T %C')"
done_step

# =================================================================================================
inputs=(--instruments examples/instruments.csv --market examples/market.csv
        --marks examples/marks.csv --positions examples/positions.csv)
accounts=$(grep -v '^#' examples/positions.csv | tail -n +2 | cut -d, -f1 | LC_ALL=C sort -u)
# name|arguments: the runs of steps a and b
runs=("hvar|--model hvar --returns examples/returns.csv"
      "span16|--model span16 --collateral examples/collateral.csv"
      "stress|--model examples/models/stress.json --collateral examples/collateral.csv")

# check_csv FILE WHAT: marginet's margin header and one row per account of examples/positions.csv
check_csv() {
  local f=$1 what=$2
  [ -s "$f" ] || { echo "  $what: $f missing or empty"; return 1; }
  local header
  header=$(head -n 1 "$f")
  case "$header" in
    account,model,*,im,mm,*|account,model,im,mm,*) ;;
    *) echo "  $what: $f header is '$header'"; return 1 ;;
  esac
  local got
  got=$(tail -n +2 "$f" | cut -d, -f1 | LC_ALL=C sort)
  if [ "$got" != "$accounts" ]; then
    echo "  $what: $f accounts are [$(echo "$got" | paste -sd' ')], want one row each for [$(echo "$accounts" | paste -sd' ')]"
    return 1
  fi
}

begin a-reference "single-process runs (no launcher)"
for r in "${runs[@]}"; do
  name=${r%%|*}; read -r -a args <<<"${r#*|}"
  t0=$(date +%s.%N)
  "$MARGINET" margin "${inputs[@]}" "${args[@]}" --format csv --out "$work/ref/$name.csv" --quiet ||
    fail "marginet margin ${args[*]} (single process) exited $?"
  check_csv "$work/ref/$name.csv" "reference $name" || fail "reference $name output"
  say "reference $name: $(( $(wc -l < "$work/ref/$name.csv") - 1 )) accounts, $(elapsed "$t0") s"
done
done_step

# stat FILE KEY: a figure of marginet's --stats JSON; KEY "resumed" sums it over the ranks
stat() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print(sum(r.get(sys.argv[2], 0) for r in s["per_rank"]) if sys.argv[2] == "resumed" else s[sys.argv[2]])
EOF
}

begin b-srun "srun --mpi=pmix -n 2, byte-identical to a"
for r in "${runs[@]}"; do
  name=${r%%|*}; read -r -a args <<<"${r#*|}"
  t0=$(date +%s.%N)
  rc=0
  timeout 120 srun --mpi=pmix -n 2 --overcommit --oversubscribe --job-name="srun-$name" \
    "$MARGINET" margin "${inputs[@]}" "${args[@]}" --format csv --out "$work/srun/$name.csv" \
    --partitions 3 --stats "$work/srun/$name.stats.json" >"$work/srun/$name.log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    tail -n 20 "$work/srun/$name.log"
    fail "srun -n 2 marginet margin ${args[*]} exited $rc"
  fi
  [ -s "$work/srun/$name.csv" ] || { cat "$work/srun/$name.log"; fail "srun $name: no output $work/srun/$name.csv"; }
  ranks=$(stat "$work/srun/$name.stats.json" ranks) || fail "srun $name: no --stats JSON"
  [ "$ranks" = 2 ] || { cat "$work/srun/$name.log"; fail "srun $name: ran as $ranks rank(s), not 2 (MPI over PMIx not working?)"; }
  cmp "$work/ref/$name.csv" "$work/srun/$name.csv" ||
    { diff "$work/ref/$name.csv" "$work/srun/$name.csv" | head -n 20; fail "srun $name: output differs from the single-process run"; }
  say "srun -n 2 $name: 2 ranks, 3 partitions, identical output ($(elapsed "$t0") s)"
done
done_step

# =================================================================================================
begin c-sbatch "eod.sbatch (2 tasks; a failed run resubmitted with RESUME=1) and stress-grid.sbatch (--array=0-3)"
# Four stress configs: examples/models/stress.json with every move and vol shift scaled.
python3 - "$work/stress" <<'EOF'
import json, sys
with open("examples/models/stress.json") as f:
    base = json.load(f)
for scale in (0.5, 1.0, 1.5, 2.0):
    cfg = json.loads(json.dumps(base))
    if scale != 1.0:
        cfg["name"] = "%s-x%g" % (base.get("name", "stress"), scale)
        for sc in cfg["scenarios"]:
            for shock in sc["shocks"].values():
                for key in ("move", "vol_shift"):
                    if key in shock:
                        shock[key] = round(shock[key] * scale, 10)
    with open("%s/scale-%03d.json" % (sys.argv[1], round(scale * 100)), "w") as f:
        json.dump(cfg, f, indent=1)
EOF
say "stress configs: $(cd "$work/stress" && echo *.json)"

# submit NAME SBATCH-ARGUMENTS...: prints the job id
submit() {
  local name=$1; shift
  sbatch --parsable --job-name="$name" "$@" | cut -d';' -f1
}
# wait_jobs SECONDS IDS...: until squeue no longer lists them
wait_jobs() {
  local limit=$1 t0; shift
  t0=$(date +%s)
  local ids
  ids=$(IFS=,; echo "$*")
  local queue
  while queue=$(squeue -h -j "$ids" -o '%i %T %r' 2>/dev/null) && [ -n "$queue" ]; do
    # A reason that waiting will not cure (a limit, a down or drained node): stop now.
    if echo "$queue" | grep -E ' PENDING .*(Limit|Invalid|Down|Drain|NotAvail|Unavailable|Nodes_required|PartitionConfig)'; then
      fail "jobs $ids cannot start (squeue above)"
    fi
    [ $(( $(date +%s) - t0 )) -lt "$limit" ] ||
      { squeue -j "$ids"; fail "jobs $ids still queued or running after ${limit}s"; }
    sleep 0.5
  done
}
# job_state ID: the states and exit codes of the job (its array tasks), one line each
job_state() {
  scontrol -o show job "$1" 2>/dev/null |
    sed -E 's/.*JobState=([A-Z_]+).* ExitCode=([0-9:]+).*/\1 \2/' | LC_ALL=C sort | uniq -c | sed 's/^ *//'
}
# job_ok ID: every (array) task COMPLETED with exit code 0:0
job_ok() {
  local states
  states=$(job_state "$1")
  if [ -z "$states" ] || echo "$states" | grep -qv ' COMPLETED 0:0$'; then
    echo "  job $1: ${states:-unknown to scontrol}" | paste -sd' '
    return 1
  fi
  echo "  job $1: $(echo "$states" | cut -d' ' -f1) task(s) COMPLETED, exit 0"
}
show_job_outputs() { local f; for f in "$work"/jobs/*; do echo "--- $f"; tail -n 15 "$f"; done; }

# Three jobs at once, submitted from the temporary folder (not the checkout: the scripts must
# find it themselves), relative to which nothing below is:
#  - eod: the end-of-day run, 2 tasks;
#  - eod-fails: the same run, but its OUT is a folder, so rank 0 fails writing it after every
#    partition is checkpointed in OUT.parts/ (a job that died at the end);
#  - stress: the grid, 4 array tasks.
t0=$(date +%s.%N)
mkdir -p "$work/out/eod-resume.csv"
eod1=$(cd "$work" && MODEL=span16 OUT="$work/out/eod-span16.csv" PARTITIONS=3 \
       submit eod --ntasks=2 --output="$work/jobs/eod-%j.out" "$root/scripts/slurm/eod.sbatch")
eodf=$(cd "$work" && MODEL=span16 OUT="$work/out/eod-resume.csv" PARTITIONS=3 \
       submit eod-fails --ntasks=2 --output="$work/jobs/eod-fails-%j.out" "$root/scripts/slurm/eod.sbatch")
grid=$(cd "$work" && STRESS_DIR="$work/stress" OUT_DIR="$work/out/stress" PARTITIONS=2 \
       submit stress --array=0-3 --output="$work/jobs/stress-%A_%a.out" "$root/scripts/slurm/stress-grid.sbatch")
say "submitted eod.sbatch as jobs $eod1 and $eodf (the one to fail), stress-grid.sbatch as array job $grid"
wait_jobs 180 "$eod1" "$eodf" "$grid"

errors=0
job_ok "$eod1" || errors=$((errors + 1))
job_ok "$grid" || errors=$((errors + 1))
check_csv "$work/out/eod-span16.csv" "eod" || errors=$((errors + 1))
if [ -s "$work/out/eod-span16.csv" ]; then
  cmp "$work/ref/span16.csv" "$work/out/eod-span16.csv" ||
    { echo "  eod: differs from the single-process span16 run"; errors=$((errors + 1)); }
fi
[ ! -e "$work/out/eod-span16.csv.parts" ] ||
  echo "  (note: eod-span16.csv.parts/ is still there after a finished run)"
for cfg in "$work"/stress/*.json; do
  name=$(basename "$cfg" .json)
  check_csv "$work/out/stress/stress-$name.csv" "stress $name" || errors=$((errors + 1))
done
if [ -s "$work/out/stress/stress-scale-100.csv" ]; then
  cmp "$work/ref/stress.csv" "$work/out/stress/stress-scale-100.csv" ||
    { echo "  stress x1: differs from the single-process stress.json run"; errors=$((errors + 1)); }
  if cmp -s "$work/out/stress/stress-scale-050.csv" "$work/out/stress/stress-scale-200.csv"; then
    echo "  stress: the x0.5 and x2 grids gave the same output"; errors=$((errors + 1))
  fi
fi
state_f=$(job_state "$eodf" | paste -sd' ')
case "$state_f" in
  *COMPLETED*|"") echo "  eod-fails: job $eodf should have failed, it is: ${state_f:-unknown}"; errors=$((errors + 1)) ;;
  *) echo "  job $eodf: $state_f (as it should: its OUT is a folder)" ;;
esac
parts="$work/out/eod-resume.csv.parts"
n_parts=$(find "$parts" -type f 2>/dev/null | wc -l)
[ "$n_parts" -eq 3 ] ||
  { echo "  eod-fails: $n_parts checkpoint(s) in $(basename "$parts")/, want 3 (one per partition)"; errors=$((errors + 1)); }
[ "$errors" -eq 0 ] || { show_job_outputs; fail "c: $errors check(s) failed"; }
say "eod job $eod1: identical to the single-process run; stress array $grid: 4 outputs checked ($(elapsed "$t0") s)"
say "stress grid, IM of $(sed -n '2s/,.*//p' "$work/ref/stress.csv") by shock scale (x0.5 x1 x1.5 x2):$(
  for f in "$work"/out/stress/stress-*.csv; do
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "im") c = i } NR == 2 { printf " %.2f", $c }' "$f"
  done)"

# The resubmission: OUT writable again and one checkpoint lost (a partition that "did not
# finish"); RESUME=1 must take the other two from OUT.parts/, compute the third and write the
# same bytes as the single-process run.
t0=$(date +%s.%N)
rmdir "$work/out/eod-resume.csv"
removed=$(find "$parts" -type f | LC_ALL=C sort | tail -n 1)
rm -f "$removed"
say "eod-fails left $(basename "$parts")/ with 3 checkpoints; removed $(basename "$removed"), resubmitting with RESUME=1"
eod2=$(cd "$work" && MODEL=span16 OUT="$work/out/eod-resume.csv" PARTITIONS=3 RESUME=1 \
       MARGINET_ARGS="--stats $work/out/eod-resume.stats.json" \
       submit eod-resume --ntasks=2 --output="$work/jobs/eod-resume-%j.out" "$root/scripts/slurm/eod.sbatch")
wait_jobs 120 "$eod2"
errors=0
job_ok "$eod2" || errors=$((errors + 1))
grep -q -- '--resume' "$work/jobs/eod-resume-$eod2.out" ||
  { echo "  eod RESUME=1: the job did not pass --resume"; errors=$((errors + 1)); }
check_csv "$work/out/eod-resume.csv" "eod RESUME=1" || errors=$((errors + 1))
if [ -s "$work/out/eod-resume.csv" ]; then
  cmp "$work/ref/span16.csv" "$work/out/eod-resume.csv" ||
    { echo "  eod RESUME=1: differs from the single-process span16 run"; errors=$((errors + 1)); }
fi
resumed=$(stat "$work/out/eod-resume.stats.json" resumed 2>/dev/null) || resumed="?"
ranks=$(stat "$work/out/eod-resume.stats.json" ranks 2>/dev/null) || ranks="?"
if [ "$resumed" != 2 ] || [ "$ranks" != 2 ]; then
  echo "  eod RESUME=1: $resumed partition(s) from checkpoints over $ranks rank(s), want 2 over 2"; errors=$((errors + 1))
fi
[ "$errors" -eq 0 ] || { show_job_outputs; fail "c: resubmission with RESUME=1"; }
say "eod resubmitted with RESUME=1 as job $eod2: 2 partitions from checkpoints, 1 computed, identical output ($(elapsed "$t0") s)"
done_step
