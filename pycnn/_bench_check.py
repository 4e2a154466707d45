"""Is the machine quiet enough for `pycnn bench` to be believed? (issue 19, item 1)

Three signals, each turned into a warning when it says the numbers are unreliable:

* spread: every (library, shape) is timed once per round, each round in new processes;
  the largest max/min over the rounds of the forward+backward time;
* other processes' CPU use during the run: the CPU time the whole machine spent busy
  (``/proc/stat``, Linux) less the CPU time of this process and its workers, as a share
  of what the CPUs could have done in that wall time; where ``/proc/stat`` is missing,
  the load average before the run against the number of CPUs;
* a probe: each worker times a fixed single-threaded loop before and after its
  measurements and reports the share of a core that thread got (its CPU time over the
  wall time); a busy machine hands it less than a whole core.
"""

import os
import time

# defaults of the limits (`pycnn bench --max-spread`, ...)
MAX_SPREAD = 1.3  # max/min of one measurement over the rounds
MAX_OTHER_CPU = 0.10  # share of the machine's CPU time others may use during the run
MIN_CORE_SHARE = 0.90  # share of a core the probe's thread must get


def probe(seconds=0.05):
    """Share of one core the calling thread got while it ran a fixed loop for about
    `seconds`: its CPU time over the wall time (about 1 on an idle core)."""
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    total = 0
    while time.perf_counter() - wall0 < seconds:
        for i in range(2000):
            total += i
    wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
    return min(cpu / wall, 1.0) if wall > 0 else 1.0


def _busy_seconds():
    """(CPU seconds all CPUs spent busy since boot, number of CPUs), from /proc/stat;
    None where it cannot be read."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    fields = [int(v) for v in lines[0].split()[1:]]
    # user nice system idle iowait irq softirq steal ...: busy is all but idle and iowait
    busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)
    # guest time is already counted in user and nice
    busy -= sum(fields[8:10]) if len(fields) > 9 else 0
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return busy / os.sysconf("SC_CLK_TCK"), max(cpus, 1)


def _own_cpu_seconds():
    """CPU seconds of this process and of its finished (waited-for) children."""
    try:
        import resource
    except ImportError:  # not on Unix (nor is /proc/stat, so this is not used)
        return time.process_time()
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class CpuMonitor:
    """Measures the CPU time other processes use between `start()` and `stop()`."""

    def start(self):
        self._wall = time.perf_counter()
        self._busy = _busy_seconds()
        self._own = _own_cpu_seconds()
        self.load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        return self

    def stop(self):
        """{'other_cpu_share': float or None, 'cpus': int, 'wall': s, 'load_before': x}."""
        wall = time.perf_counter() - self._wall
        own = _own_cpu_seconds() - self._own
        after = _busy_seconds()
        share, cpus = None, os.cpu_count() or 1
        if self._busy is not None and after is not None and wall > 0:
            cpus = after[1]
            others = max(after[0] - self._busy[0] - own, 0.0)
            share = others / (cpus * wall)
        return {
            "other_cpu_share": share,
            "cpus": cpus,
            "wall": wall,
            "load_before": self.load_before,
        }


def spread(rounds):
    """max/min of positive per-round times (1.0 for fewer than two)."""
    values = [v for v in rounds if v > 0]
    return max(values) / min(values) if len(values) > 1 else 1.0


def verdict(spreads, machine, core_shares, rounds, limits):
    """(summary line, warnings) for the run.

    `spreads` maps a label ("numpy lenet2") to max/min over the rounds, `machine` is
    `CpuMonitor.stop()`'s dict, `core_shares` the probes' shares of a core, `limits`
    a dict with max_spread, max_other_cpu, min_core_share.
    """
    warnings = []
    parts = [f"{rounds} round(s)"]
    if rounds < 2:
        warnings.append(
            "the spread between rounds was not measured (--rounds 1); use --rounds 3"
        )
    elif spreads:
        worst = max(spreads, key=spreads.get)
        parts.append(f"largest spread max/min {spreads[worst]:.2f} ({worst})")
        bad = sorted((k for k, v in spreads.items() if v > limits["max_spread"]), key=str)
        if bad:
            warnings.append(
                f"times varied by more than x{limits['max_spread']:g} between rounds for "
                + ", ".join(f"{k} (x{spreads[k]:.2f})" for k in bad)
            )
    share, cpus = machine.get("other_cpu_share"), machine.get("cpus")
    if share is not None:
        parts.append(f"other processes used {100 * share:.0f}% of the {cpus} CPUs")
        if share > limits["max_other_cpu"]:
            warnings.append(
                f"other processes used {100 * share:.0f}% of the {cpus} CPUs' time during "
                f"the run (limit {100 * limits['max_other_cpu']:.0f}%)"
            )
    load = machine.get("load_before")
    if load is not None:
        parts.append(f"load average {load:.2f} on {cpus} CPUs before the run")
        if share is None and load > 0.5 * cpus:  # no /proc/stat: the load average decides
            warnings.append(f"the load average was {load:.2f} on {cpus} CPUs before the run")
    if core_shares:
        low = min(core_shares)
        parts.append(f"probe got >= {100 * low:.0f}% of a core")
        if low < limits["min_core_share"]:
            warnings.append(
                f"a single-threaded probe loop got only {100 * low:.0f}% of a core "
                f"(limit {100 * limits['min_core_share']:.0f}%): other work shares the CPUs"
            )
    return "reliability: " + "; ".join(parts), warnings
