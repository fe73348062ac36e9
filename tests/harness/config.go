package harness

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Options configures the clusters Start and StartN create.
type Options struct {
	// Preload adds shared_preload_libraries = 'steep_repl'; the extension must
	// be installed (make install-ext). DefaultOptions sets it.
	Preload bool
	// Settings are extra postgresql.conf settings; they override the harness
	// defaults. Values are written quoted unless already single-quoted, e.g.
	// {"log_min_messages": "debug1"}.
	Settings map[string]string
	// Name prefixes the node names used in logs and directory names
	// (default "node"; StartN appends "_a", "_b", ...).
	Name string
}

// DefaultOptions returns the options for clusters running the steep_repl
// extension: Preload on, Name "node".
func DefaultOptions() Options {
	return Options{Preload: true, Name: "node"}
}

func (o Options) name() string {
	if o.Name == "" {
		return "node"
	}
	return o.Name
}

// harnessConf is the file, inside the data directory, holding the settings the
// harness manages; postgresql.conf includes it last.
const harnessConf = "harness.conf"

// serverSettings returns the postgresql.conf settings of a node: the harness
// defaults, the preload library, then opts.Settings. synchronous_commit is
// on, unlike the usual speed recipe: with fsync = off a commit costs only a
// write(2), while "off" would lose the last commits on Crash.
func serverSettings(opts Options, port int, socketDir string) map[string]string {
	s := map[string]string{
		"listen_addresses":                  "127.0.0.1",
		"port":                              strconv.Itoa(port),
		"unix_socket_directories":           socketDir,
		"wal_level":                         "logical",
		"max_replication_slots":             "20",
		"max_wal_senders":                   "20",
		"max_worker_processes":              "32",
		"max_logical_replication_workers":   "16",
		"max_sync_workers_per_subscription": "4",
		"track_commit_timestamp":            "on",
		"fsync":                             "off",
		"synchronous_commit":                "on",
		"full_page_writes":                  "off",
		"shared_buffers":                    "32MB",
		"logging_collector":                 "off",
		"log_line_prefix":                   "%m [%p] %b ",
		"max_connections":                   "100",
	}
	if opts.Preload {
		s["shared_preload_libraries"] = "steep_repl"
	}
	maps.Copy(s, opts.Settings)
	return s
}

// renderConf renders settings as postgresql.conf lines, sorted by name.
func renderConf(settings map[string]string) string {
	var b strings.Builder
	b.WriteString("# written by the steep_repl test harness\n")
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		fmt.Fprintf(&b, "%s = %s\n", k, quoteConfValue(settings[k]))
	}
	return b.String()
}

// quoteConfValue single-quotes v for postgresql.conf unless it already is.
func quoteConfValue(v string) string {
	if len(v) >= 2 && strings.HasPrefix(v, "'") && strings.HasSuffix(v, "'") {
		return v
	}
	v = strings.ReplaceAll(v, `\`, `\\`)
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago and
// that this process has not handed out before.
func freePort() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		portsMu.Lock()
		taken := portsUsed[port]
		portsUsed[port] = true
		portsMu.Unlock()
		if !taken {
			return port, nil
		}
	}
	return 0, fmt.Errorf("find a free port: no unused port after 50 tries")
}

// isBindError reports whether a start failure came from a port in use.
func isBindError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "could not bind") || strings.Contains(s, "ddress already in use")
}
