#!/usr/bin/env bash
# Start a one-node Slurm on this host from Debian's packages (slurm-wlm, munge), for the
# tests and for trying the job scripts by hand:
#
#   eval "$(tests/slurm/slurm_up.sh)"        # prints: export SLURM_CONF=...
#   sbatch jobs/slurm/demo-cpu.sbatch; squeue; sinfo
#   tests/slurm/slurm_down.sh
#
# Everything it writes (slurm.conf, state, spool, logs, pid files) lives in one private
# directory, $SLURM_TEST_DIR (default /tmp/bpt-slurm); nothing under /etc/slurm is touched.
# It needs root (slurmd runs jobs as their users, and apt-get installs missing packages).
#
# Environment:
#   SLURM_TEST_DIR    the private directory (default /tmp/bpt-slurm)
#   SLURM_TEST_CPUS   CPUs the node claims (default 8; SlurmdParameters=config_overrides
#                     lets 8 tasks run on a 2-core machine)
#   SLURM_TEST_PORT   slurmctld port; slurmd uses the next one (default: the first free
#                     pair from 6817)
#   SLURM_TEST_CRED_EXPIRE  step credential lifetime in seconds, which is also how long a
#                     requeued job waits before it starts again (default 10; Slurm's is 120)
#   SLURM_TEST_TIMEOUT seconds to wait for slurmctld to answer and then for the node to
#                     become idle (default 60 each); on a timeout it fails with one line and
#                     the last lines of slurmctld.log and slurmd.log
#
# Nothing here needs the host name to resolve (a fresh Debian or a chroot/container may
# have no /etc/hosts line for it): every daemon and client reaches the node and the
# controller at 127.0.0.1. Nor does it need cgroups: proctrack/linuxproc, task/none, and
# a cgroup.conf that keeps slurmd away from /sys/fs/cgroup (absent in a chroot).
#
# Exit status: 0 up (the last line of stdout is the export line), 77 Slurm cannot start
# here (not root: the caller skips), 1 anything else (missing packages included).
# Idempotent: when the cluster of this directory already answers, it only prints the line.
set -u
DIR=${SLURM_TEST_DIR:-/tmp/bpt-slurm}
CPUS=${SLURM_TEST_CPUS:-8}
CRED_EXPIRE=${SLURM_TEST_CRED_EXPIRE:-10}
TIMEOUT=${SLURM_TEST_TIMEOUT:-60}
CONF=$DIR/slurm.conf
HOST=$(hostname -s 2>/dev/null) || HOST=
[ -n "$HOST" ] || HOST=$(uname -n | cut -d. -f1)
ADDR=127.0.0.1

say()  { echo "slurm_up: $*" >&2; }
# one line, then the last lines of the daemons' logs (what they said about it)
die()  {
    say "error: $*"
    local f
    for f in "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log"; do
        [ -s "$f" ] || continue
        echo "--- last lines of $f ---" >&2
        tail -n 15 "$f" >&2
    done
    exit 1
}
skip() { say "SKIP: $*"; exit 77; }

[ "$(id -u)" -eq 0 ] || skip "not root (slurmd and munged need root to start here)"

# --- packages -------------------------------------------------------------------
need_pkgs=
for b in slurmctld slurmd sbatch srun scontrol sinfo; do command -v $b >/dev/null || need_pkgs=1; done
command -v munged >/dev/null || need_pkgs=1
if [ -n "$need_pkgs" ]; then
    command -v apt-get >/dev/null || die "missing test dependency: slurm-wlm, munge (not installed, and there is no apt-get)"
    say "installing slurm-wlm munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq >&2 || die "missing test dependency: slurm-wlm, munge (apt-get update failed)"
    timeout 600 apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends slurm-wlm munge >&2 ||
        die "missing test dependency: slurm-wlm, munge (apt-get install failed)"
    hash -r
fi

# --- is our cluster already up? --------------------------------------------------
node_state() { SLURM_CONF=$CONF timeout 10 sinfo -h -N -n "$HOST" -o %T 2>/dev/null | head -n 1; }
if [ -f "$CONF" ] && SLURM_CONF=$CONF timeout 10 scontrol ping 2>/dev/null | grep -q UP; then
    case $(node_state) in
        idle*|mixed*|allocated*|completing*) say "already up ($DIR)"; echo "export SLURM_CONF=$CONF"; exit 0 ;;
    esac
fi
# a half-started cluster of this directory: stop it first
if [ -f "$DIR/slurmctld.pid" ] || [ -f "$DIR/slurmd.pid" ]; then
    say "stopping a half-started cluster in $DIR"
    SLURM_TEST_KEEP_DIR=1 SLURM_TEST_DIR=$DIR "$(dirname "$0")/slurm_down.sh" >&2 || true
fi
mkdir -p "$DIR"/{state,spool/slurmd-"$HOST",log,tmp,cgroup} || die "cannot create $DIR"
chmod 755 "$DIR"

# --- munge ------------------------------------------------------------------------
munge_ok() { timeout 10 munge -n 2>/dev/null | timeout 10 unmunge >/dev/null 2>&1; }
if ! munge_ok; then
    id munge >/dev/null 2>&1 || die "no 'munge' user (is the munge package installed?)"
    install -d -o munge -g munge -m 700 /etc/munge /var/lib/munge /var/log/munge
    install -d -o munge -g munge -m 755 /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        say "creating /etc/munge/munge.key"
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key --force >&2 || die "mungekey failed"
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none || die "cannot write the munge key"
        fi
    fi
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    # a stale pid file or socket from a killed munged makes a new one refuse to start
    rm -f /run/munge/munged.pid /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    timeout 20 runuser -u munge -- /usr/sbin/munged >&2 || die "munged did not start (see /var/log/munge/munged.log)"
    for _ in $(seq 50); do munge_ok && break; sleep 0.2; done
    munge_ok || die "munged started but 'munge -n | unmunge' fails"
    cat /run/munge/munged.pid > "$DIR/munged.pid" 2>/dev/null   # ours: slurm_down stops it
    say "munged started (pid $(cat "$DIR/munged.pid" 2>/dev/null))"
fi

# --- ports -------------------------------------------------------------------------
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ -n "${SLURM_TEST_PORT:-}" ]; then
    PORT=$SLURM_TEST_PORT
else
    PORT=6817
    while port_busy $PORT || port_busy $((PORT + 1)); do
        PORT=$((PORT + 2)); [ $PORT -lt 6917 ] || die "no free port pair in 6817-6916"
    done
fi

# --- MPI plugin ----------------------------------------------------------------------
# Debian's slurm-wlm-basic-plugins ships mpi/pmix (PMIx v4), which Open MPI 4.1 speaks.
PLUGDIR=$(dirname "$(ls /usr/lib/*/slurm-wlm/mpi_none.so /usr/lib*/slurm/mpi_none.so 2>/dev/null | head -n 1)")
MPI_DEFAULT=pmix
if [ ! -e "$PLUGDIR/mpi_pmix.so" ]; then
    # Debian's Open MPI has no PMI-2 client, so srun cannot start it without PMIx; Open
    # MPI's own mpirun inside the allocation still works (it launches through Slurm)
    MPI_DEFAULT=none
    say "warning: no mpi/pmix plugin in $PLUGDIR: MpiDefault=none; 'srun --mpi=pmix' will fail, use mpirun inside sbatch/salloc"
fi

# --- slurm.conf ---------------------------------------------------------------------
cat > "$CONF" <<EOF
# One-node test cluster written by tests/slurm/slurm_up.sh ($(date -u +%FT%TZ)).
ClusterName=bpttest
MailProg=/bin/true
# name(address): clients and slurmd reach the controller without resolving the name
SlurmctldHost=$HOST($ADDR)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also the delay before a requeued job may start again (default 120 s)
AuthInfo=cred_expire=$CRED_EXPIRE
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/slurmd-%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
TmpFS=$DIR/tmp
MpiDefault=$MPI_DEFAULT
# no cgroups in a container
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
# look at pending jobs every 2 s (default 60 s): a requeued job restarts promptly
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# trust the node line below rather than the hardware (8 tasks on 2 cores)
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
MinJobAge=600
KillWait=10
InactiveLimit=0
SlurmdTimeout=120
SlurmctldTimeout=60
NodeName=$HOST NodeAddr=$ADDR NodeHostname=$HOST CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE
EOF

# --- cgroup.conf --------------------------------------------------------------------
# slurmd of Slurm 22.05 loads a cgroup plugin even with proctrack/linuxproc and task/none,
# and "autodetect" fails ("No filesystem mounted on /sys/fs/cgroup", "slurmd
# initialization failed") where nothing is mounted there (a chroot, some containers).
# cgroup/v1 with a private, empty mount point initializes without touching the host's
# cgroups; nothing configured here ever creates a cgroup. (Slurm reads cgroup.conf from
# the directory of slurm.conf.)
cat > "$DIR/cgroup.conf" <<EOF
# written by tests/slurm/slurm_up.sh: no cgroups (proctrack/linuxproc, task/none)
CgroupPlugin=cgroup/v1
CgroupMountpoint=$DIR/cgroup
EOF

# --- daemons -------------------------------------------------------------------------
export SLURM_CONF=$CONF
# running, not a zombie (as in slurm_down.sh: a container's init may never reap them)
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null; }
pid_of() { [ -s "$1" ] && tr -dc 0-9 < "$1"; }
# its last error line stays in $DIR/log/ping.err for the message below
ctld_up() { timeout 5 scontrol ping 2>"$DIR/log/ping.err" | grep -q 'is UP'; }

# -c: start from a clean job state (a new test cluster); daemonized, pid files in $DIR
timeout 30 slurmctld -c -f "$CONF" >&2 || die "slurmctld did not start (exit $?)"
t0=$SECONDS
until ctld_up; do
    ping_err=$(grep -v '^ *$' "$DIR/log/ping.err" 2>/dev/null | tail -n 1)
    pid=$(pid_of "$DIR/slurmctld.pid")
    [ -z "$pid" ] || alive "$pid" || die "slurmctld exited"
    [ $((SECONDS - t0)) -lt "$TIMEOUT" ] ||
        die "slurmctld at $ADDR:$PORT does not answer 'scontrol ping' after ${TIMEOUT}s${ping_err:+ ($ping_err)}"
    sleep 0.5
done
timeout 30 slurmd -f "$CONF" -N "$HOST" >&2 || die "slurmd did not start (exit $?)"

# --- wait for the node ---------------------------------------------------------------
t0=$SECONDS
while :; do
    st=$(node_state)
    case $st in
        idle*) break ;;
        down*|drain*|fail*) timeout 10 scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 ;;
    esac
    # a slurmd that failed to initialize has exited by now (it writes its pid file first)
    pid=$(pid_of "$DIR/slurmd.pid")
    [ $((SECONDS - t0)) -lt 3 ] || { [ -n "$pid" ] && alive "$pid"; } ||
        die "slurmd exited; node $HOST is '${st:-not listed}'"
    alive "$(pid_of "$DIR/slurmctld.pid")" || die "slurmctld exited; node $HOST is '${st:-not listed}'"
    [ $((SECONDS - t0)) -lt "$TIMEOUT" ] || die "node $HOST is '${st:-not listed}' after ${TIMEOUT}s, not idle"
    sleep 1
done
say "up: node $HOST idle, $CPUS CPUs, partition debug, MpiDefault=$MPI_DEFAULT, ports $PORT/$((PORT + 1)), dir $DIR"
echo "export SLURM_CONF=$CONF"
