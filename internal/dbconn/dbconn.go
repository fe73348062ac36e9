// Package dbconn opens connections the way psql does: an explicit URL or conninfo, or else the
// libpq environment (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGSERVICE, ...), and
// describes a connection without ever showing its password. Redact and RedactError are the one
// implementation of removing a connection string or password from text (logs, errors, events).
package dbconn

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ParseConfig parses url (a postgres:// URL or a key=value conninfo); "" means the libpq environment.
func ParseConfig(url string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse connection string: %w", RedactError(err, url))
	}
	return cfg, nil
}

// Connect opens one connection with application_name set to app.
func Connect(ctx context.Context, url, app string) (*pgx.Conn, error) {
	cfg, err := ParseConfig(url)
	if err != nil {
		return nil, err
	}
	setApp(cfg.RuntimeParams, app)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", Describe(cfg), err)
	}
	return conn, nil
}

// Pool opens a pool of at most maxConns connections with application_name set to app.
func Pool(ctx context.Context, url, app string, maxConns int32) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse connection string: %w", RedactError(err, url))
	}
	setApp(pcfg.ConnConfig.RuntimeParams, app)
	if maxConns > 0 {
		pcfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", Describe(pcfg.ConnConfig), err)
	}
	return pool, nil
}

func setApp(params map[string]string, app string) {
	if _, ok := params["application_name"]; !ok && app != "" {
		params["application_name"] = app
	}
}

// Describe names the server a config points at, for logs: user@host:port/db, never the password.
func Describe(cfg *pgx.ConnConfig) string {
	return fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// DescribeURL is Describe for a connection string; it never fails (unparsable input is "<invalid>").
func DescribeURL(url string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return "<invalid connection string>"
	}
	return Describe(cfg)
}
