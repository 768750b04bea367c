#!/usr/bin/env bash
# Stop the one-node Slurm that tests/slurm/slurm_up.sh started in $SLURM_TEST_DIR
# (default /tmp/bpt-slurm): slurmctld and slurmd (scontrol shutdown, then their pid
# files), munged if slurm_up started it, then remove the directory
# (SLURM_TEST_KEEP_DIR=1 keeps it, e.g. to read the logs). Never hangs; exit 0.
set -u
DIR=${SLURM_TEST_DIR:-/tmp/bpt-slurm}
CONF=$DIR/slurm.conf
say() { echo "slurm_down: $*" >&2; }

# running, not a zombie (a container's init may never reap the daemons)
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null; }
pid_of() { [ -s "$1" ] && tr -dc 0-9 < "$1"; }

# stop_pid NAME PIDFILE: TERM, wait up to 10 s, then KILL
stop_pid() {
    local pid; pid=$(pid_of "$2") || return 0
    alive "$pid" || return 0
    # only a process whose command is the daemon we started
    grep -q "$1" "/proc/$pid/comm" 2>/dev/null || { say "pid $pid is not $1; left alone"; return 0; }
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do alive "$pid" || return 0; sleep 0.2; done
    say "$1 ($pid) ignored SIGTERM; SIGKILL"
    kill -KILL "$pid" 2>/dev/null
}

if [ -f "$CONF" ]; then
    # cancel what is left, then ask slurmctld to stop itself and every slurmd
    SLURM_CONF=$CONF timeout 10 scancel --full --quiet --partition=debug >/dev/null 2>&1 || true
    SLURM_CONF=$CONF timeout 10 scontrol shutdown >/dev/null 2>&1 || true
    for _ in $(seq 50); do
        alive "$(pid_of "$DIR/slurmctld.pid")" || alive "$(pid_of "$DIR/slurmd.pid")" || break
        sleep 0.2
    done
fi
stop_pid slurmd "$DIR/slurmd.pid"
stop_pid slurmctld "$DIR/slurmctld.pid"
# munged serves every Slurm on this host: stop ours only when no other slurmctld/slurmd runs
# (zombies do not count: a container's init may never reap the daemons' exited processes)
# (and only one under our root directory: a Slurm in a chroot or container sharing this
# /proc uses its own munged, and ours does not serve it; an unreadable root counts as ours)
same_root() { [ "/proc/$1/root" -ef / ] || [ ! -e "/proc/$1/root/" ]; }
other_slurm() {
    local st pid
    for st in /proc/[0-9]*/stat; do
        # "pid (comm) state ...": a live slurmctld or slurmd (no procps needed)
        grep -qE '^[0-9]+ \((slurmctld|slurmd)\) [^Z]' "$st" 2>/dev/null || continue
        pid=${st#/proc/}; pid=${pid%/stat}
        same_root "$pid" && return 0
    done
    return 1
}
if other_slurm; then
    [ -s "$DIR/munged.pid" ] && say "munged left running: another Slurm on this host uses it"
else
    stop_pid munged "$DIR/munged.pid"
fi
rm -f "$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$DIR/munged.pid"
if [ "${SLURM_TEST_KEEP_DIR:-0}" = 1 ]; then
    say "stopped; kept $DIR"
else
    case $DIR in /|/tmp|"") ;; *) rm -rf "$DIR" ;; esac
    say "stopped; removed $DIR"
fi
exit 0
