package tests

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// userHZ is the unit of /proc/stat's counters: fixed at 100 by the kernel's ABI whatever
// CONFIG_HZ is.
const userHZ = 100

// machineBusySeconds is the CPU time every core of this machine has spent not idle (user, nice,
// system, irq, softirq, steal in /proc/stat). The difference across a run is that run's CPU
// work, every process counted: both nodes, their walsenders and sync workers, the sidecar.
func machineBusySeconds(b *testing.B) float64 {
	b.Helper()
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatalf("read /proc/stat: %v", err)
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		b.Fatalf("unexpected /proc/stat first line %q", line)
	}
	var busy float64
	for i, name := range []string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"} {
		v, err := strconv.ParseFloat(f[i+1], 64)
		if err != nil {
			b.Fatalf("/proc/stat %s: %v", name, err)
		}
		if name != "idle" && name != "iowait" {
			busy += v
		}
	}
	return busy / userHZ
}

// machineCores is how many cores /proc/stat's first line sums (its cpuN lines): the cores
// machineBusySeconds counts, whatever this process's own CPU affinity.
func machineCores(b *testing.B) int {
	b.Helper()
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatalf("read /proc/stat: %v", err)
	}
	n := 0
	for _, line := range strings.Split(string(raw), "\n") {
		if len(line) > 3 && strings.HasPrefix(line, "cpu") && line[3] >= '0' && line[3] <= '9' {
			n++
		}
	}
	if n == 0 {
		b.Fatal("/proc/stat lists no cpuN line")
	}
	return n
}

// cpuBoundRatio is the best reference/fast wall-time ratio cores could show: the reference's
// wall time over the fast run's CPU work spread evenly over every core. A goal above it needs
// less CPU work, not more parallelism.
func cpuBoundRatio(referenceWall, fastCPU float64, cores int) float64 {
	return referenceWall / (fastCPU / float64(cores))
}

// processBusySeconds is the CPU time (user and system) process pid has used so far, from
// /proc/pid/stat (fields 14 and 15, counted after the command name's closing parenthesis,
// which may itself hold spaces).
func processBusySeconds(b *testing.B, pid int) float64 {
	b.Helper()
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatalf("read /proc/%d/stat: %v", pid, err)
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		b.Fatalf("unexpected /proc/%d/stat %q", pid, s)
	}
	var busy float64
	for _, v := range f[11:13] {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			b.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		busy += n
	}
	return busy / userHZ
}
