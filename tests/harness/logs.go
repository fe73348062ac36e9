package harness

import (
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// maxLogRead caps how much of the end of a server log LogTail reads.
const maxLogRead = 4 << 20

// LogTail returns the last lines lines of the server log.
func (n *Node) LogTail(lines int) string {
	size := fileSize(n.LogFile)
	return n.logSince(max(0, size-maxLogRead), lines)
}

// logSince returns at most the last lines lines of the log from byte offset on.
func (n *Node) logSince(offset int64, lines int) string {
	f, err := os.Open(n.LogFile)
	if err != nil {
		return "(no server log: " + err.Error() + ")"
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return "(read server log: " + err.Error() + ")"
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return "(read server log: " + err.Error() + ")"
	}
	return lastLines(string(b), lines)
}

// lastLines returns the last n lines of s, without a trailing newline.
func lastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	if n <= 0 || s == "" {
		return ""
	}
	idx := len(s)
	for range n {
		i := strings.LastIndexByte(s[:idx], '\n')
		if i < 0 {
			return s
		}
		idx = i
	}
	return s[idx+1:]
}

// LogCount returns how many times the server log contains s.
func (n *Node) LogCount(s string) int {
	b, err := os.ReadFile(n.LogFile)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), s)
}

// LogContains reports whether the server log contains s.
func (n *Node) LogContains(s string) bool {
	b, err := os.ReadFile(n.LogFile)
	return err == nil && strings.Contains(string(b), s)
}

// The running nodes of the process, so an interrupt (Ctrl-C, SIGTERM) can stop
// their servers before the test binary dies.
var (
	liveMu      sync.Mutex
	liveNodes   = map[*Node]bool{}
	signalsOnce sync.Once
)

func trackRunning(n *Node, on bool) {
	signalsOnce.Do(watchSignals)
	liveMu.Lock()
	defer liveMu.Unlock()
	if on {
		liveNodes[n] = true
	} else {
		delete(liveNodes, n)
	}
}

// watchSignals stops every running server (immediate shutdown) and removes
// its directories on SIGINT or SIGTERM, then lets the signal take its default
// effect.
func watchSignals() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-ch
		liveMu.Lock()
		pids := map[*Node]int{}
		for n := range liveNodes {
			if pid := n.postmasterPID(); pid > 0 {
				syscall.Kill(pid, syscall.SIGQUIT)
				pids[n] = pid
			}
		}
		deadline := time.Now().Add(5 * time.Second)
		for n, pid := range pids {
			for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			os.RemoveAll(n.BaseDir)
		}
		liveMu.Unlock()
		signal.Reset(os.Interrupt, syscall.SIGTERM)
		if s, ok := sig.(syscall.Signal); ok {
			syscall.Kill(os.Getpid(), s)
		}
		os.Exit(1)
	}()
}

// postmasterPID reads the postmaster's pid from postmaster.pid (0 if none).
func (n *Node) postmasterPID() int {
	b, err := os.ReadFile(filepath.Join(n.DataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0
	}
	return pid
}
