package pgtools

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgconn"
)

// Server is the server a program works with: its version (server_version) and number
// (server_version_num).
type Server struct {
	Version    string
	VersionNum int
}

// SchemaScript returns `pg_dump --schema-only` of the database cfg reaches as a plain SQL
// script (psql restores it), selectArgs choosing what (--table, --schema patterns), and the
// pg_dump version. It refuses a pg_dump older than server. The dump goes through
// pg_restore, which writes the same script as pg_dump's plain format, so that the CREATE
// SCHEMA of skipSchemas (public: every database has it) can be left out.
func (p Programs) SchemaScript(ctx context.Context, cfg *pgconn.Config, server Server, app string, selectArgs, skipSchemas []string) (string, string, error) {
	dump, version, err := p.Program(ctx, "pg_dump", server.VersionNum/10000, "the server "+server.Version)
	if err != nil {
		return "", "", err
	}
	_, dumpMajor, err := ParseVersion("pg_dump (PostgreSQL) " + version)
	if err != nil {
		return "", "", err
	}
	restore, _, err := p.Program(ctx, "pg_restore", dumpMajor, "the pg_dump "+version+" that dumps the schema")
	if err != nil {
		return "", "", err
	}
	env := LibpqEnv(cfg, app)
	args := append([]string{"--schema-only", "--format=custom", "--strict-names", "--no-publications", "--no-subscriptions",
		"-d", DBNameArg(cfg.Database)}, selectArgs...)
	var archive bytes.Buffer
	if err := Run(ctx, cfg, dump, args, env, nil, &archive); err != nil {
		return "", "", fmt.Errorf("dump the schema (pg_dump %s): %w", version, err)
	}
	var toc bytes.Buffer
	if err := Run(ctx, cfg, restore, []string{"-l"}, env, bytes.NewReader(archive.Bytes()), &toc); err != nil {
		return "", "", fmt.Errorf("list the schema archive: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return "", "", err
	}
	defer r.Close()
	list := WithoutSchemaEntries(toc.String(), skipSchemas, false)
	go func() { w.WriteString(list); w.Close() }()
	var script bytes.Buffer
	if err := Run(ctx, cfg, restore, []string{"--use-list=/dev/fd/3", "-f", "-"}, env, bytes.NewReader(archive.Bytes()), &script, r); err != nil {
		return "", "", fmt.Errorf("write the schema script: %w", err)
	}
	return script.String(), version, nil
}
