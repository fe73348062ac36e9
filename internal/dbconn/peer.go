package dbconn

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
)

// Bounds of every session to a peer node (a registered conninfo), matching the dblink sessions
// of the extension (steep_repl._conninfo): a peer that accepts connections and then stops
// answering costs a bounded time, never a hung job.
const (
	peerConnectTimeout   = 10 * time.Second
	peerKeepAlive        = 10 * time.Second
	peerStatementTimeout = "60s"
)

// PeerConfig parses a peer's conninfo and pins the session: search_path = pg_catalog, so no object
// of the peer's users is picked by name whatever the conninfo's options say (startup parameters
// are applied after options), a statement timeout, TCP keepalives and a connect timeout.
func PeerConfig(conninfo, app string) (*pgx.ConnConfig, error) {
	cfg, err := ParseConfig(conninfo)
	if err != nil {
		return nil, err
	}
	PinPeer(cfg, app)
	return cfg, nil
}

// PinPeer applies PeerConfig's pins to cfg (for configs parsed elsewhere, e.g. replication).
func PinPeer(cfg *pgx.ConnConfig, app string) {
	cfg.RuntimeParams["search_path"] = "pg_catalog"
	if _, ok := cfg.RuntimeParams["statement_timeout"]; !ok {
		cfg.RuntimeParams["statement_timeout"] = peerStatementTimeout
	}
	setApp(cfg.RuntimeParams, app)
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > peerConnectTimeout {
		cfg.ConnectTimeout = peerConnectTimeout
	}
	d := &net.Dialer{KeepAlive: peerKeepAlive, Timeout: cfg.ConnectTimeout}
	cfg.DialFunc = d.DialContext
}

// ConnectPeer opens one pinned session to a peer node.
func ConnectPeer(ctx context.Context, conninfo, app string) (*pgx.Conn, error) {
	cfg, err := PeerConfig(conninfo, app)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", Describe(cfg), RedactError(err, conninfo))
	}
	return conn, nil
}
