package model

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/internal/dbconn"
)

// Config configures the model. Zero values take the defaults named on each field.
type Config struct {
	// URLs are the nodes to connect to (postgres:// URLs or key=value conninfo strings); the
	// others are found in their registries. Empty means one node from the libpq environment.
	URLs []string
	// AppName is the application_name of every connection (default "steep-console").
	AppName string
	// NoListen turns LISTEN steep_repl_events and steep_repl_progress off: changes are then
	// seen by polling only (the fallback; the latency benchmark compares both).
	NoListen bool
	// ActiveInterval is the poll period of a node whose init is under way (default 1 s).
	ActiveInterval time.Duration
	// IdleInterval is the poll period otherwise (default 2 s).
	IdleInterval time.Duration
	// ConnectTimeout bounds one connection attempt (default 3 s).
	ConnectTimeout time.Duration
	// QueryTimeout bounds one poll (default 5 s).
	QueryTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before reconnecting to an unreachable node; it
	// doubles after each failed attempt (defaults 500 ms and 5 s).
	MinBackoff, MaxBackoff time.Duration
	// SampleWindow is how much throughput history the detail view gets (default 60 s).
	SampleWindow time.Duration
}

func (c Config) withDefaults() (Config, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.AppName == "" {
		c.AppName = "steep-console"
	}
	def(&c.ActiveInterval, time.Second)
	def(&c.IdleInterval, 2*time.Second)
	def(&c.ConnectTimeout, 3*time.Second)
	def(&c.QueryTimeout, 5*time.Second)
	def(&c.MinBackoff, 500*time.Millisecond)
	def(&c.MaxBackoff, 5*time.Second)
	def(&c.SampleWindow, 60*time.Second)
	for name, d := range map[string]time.Duration{"active interval": c.ActiveInterval, "idle interval": c.IdleInterval,
		"connect timeout": c.ConnectTimeout, "query timeout": c.QueryTimeout, "min backoff": c.MinBackoff,
		"max backoff": c.MaxBackoff, "sample window": c.SampleWindow} {
		if d < 0 {
			return c, fmt.Errorf("console config: %s must not be negative, got %s", name, d)
		}
	}
	if c.MaxBackoff < c.MinBackoff {
		return c, fmt.Errorf("console config: max backoff %s is below min backoff %s", c.MaxBackoff, c.MinBackoff)
	}
	if len(c.URLs) == 0 {
		c.URLs = []string{""}
	}
	return c, nil
}

// target is a database the console can connect to.
type target struct {
	key, addr string
	cfg       *pgx.ConnConfig
}

// newTarget prepares cfg (application_name, connect timeout) and names it.
func newTarget(cfg *pgx.ConnConfig, c Config) target {
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = c.AppName
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > c.ConnectTimeout {
		cfg.ConnectTimeout = c.ConnectTimeout
	}
	addr := Addr(cfg)
	return target{key: addr + "/" + cfg.Database, addr: addr, cfg: cfg}
}

// Addr is host:port of a connection config, for display (a Unix socket directory shows as
// the directory); it never includes a user or password.
func Addr(cfg *pgx.ConnConfig) string {
	if strings.HasPrefix(cfg.Host, "/") {
		return cfg.Host + ":" + strconv.Itoa(int(cfg.Port))
	}
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
}

// parseSeed parses a --db value; errors never echo the string (it may hold a password).
func parseSeed(url string, c Config) (target, error) {
	cfg, err := dbconn.ParseConfig(url)
	if err != nil {
		return target{}, err
	}
	return newTarget(cfg, c), nil
}
