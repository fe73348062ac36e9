package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/dbconn"
	"github.com/steepdb/steep_repl/internal/pgtools"
	"github.com/steepdb/steep_repl/internal/progress"
)

// exportApp is the application_name of schema export's sessions and of its pg_dump.
const exportApp = "steep-repl schema export"

func schemaExportCommand() command {
	var peer, output, tables, schemas, binDir string
	return command{
		name: "schema export", summary: "write pg_dump --schema-only of the chosen tables or schemas (of the --db node, or of --peer) to a file",
		example: "steep-repl schema export --peer node_a --tables public.orders,public.items --output orders.sql",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&output, "output", "", "file to write, - for stdout (required)")
			fs.StringVar(&peer, "peer", "", "export a registered node's schema (through its conninfo: needs a superuser) instead of the --db node's")
			fs.StringVar(&tables, "tables", "", "only these tables (pg_dump --table), comma-separated: schema.table, or table for public (default: whole schemas)")
			fs.StringVar(&schemas, "schemas", "", "only these schemas (pg_dump --schema), comma-separated (default: every user schema)")
			fs.StringVar(&binDir, "pg-bindir", os.Getenv("STEEP_REPL_PG_BINDIR"), "directory of pg_dump and pg_restore (default: the PATH, then pg_config --bindir)")
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) != 0 || output == "" {
				return usageError{"need --output FILE (or - for stdout)"}
			}
			scope := api.SchemaScope{Tables: splitList(tables), Schemas: splitList(schemas)}
			cfg, from, err := exportTarget(ctx, env, peer)
			if err != nil {
				return err
			}
			script, n, err := exportSchema(ctx, cfg, pgtools.Programs{BinDir: binDir}, scope, from)
			if err != nil {
				return err
			}
			if output == "-" {
				_, err := io.WriteString(env.Stdout, script)
				return err
			}
			if err := writeSchemaFile(output, script); err != nil {
				return fmt.Errorf("export to %s: %w", output, err)
			}
			fmt.Fprintf(env.Stdout, "wrote the schema of %d table(s) of %s to %s\n", n, from, progress.Escape(output))
			return nil
		},
	}
}

// exportTarget is the connection the export dumps: the --db node's, or peer's registered
// conninfo read through it (superuser only: it may hold a password), pinned as every session
// to a peer is. from names it for messages.
func exportTarget(ctx context.Context, env *Env, peer string) (*pgx.ConnConfig, string, error) {
	if peer == "" {
		cfg, err := dbconn.ParseConfig(*env.db)
		if err != nil {
			return nil, "", usageError{fmt.Sprintf("--db is neither a postgres:// URL nor a key=value conninfo: %v", err)}
		}
		return cfg, "the local node", nil
	}
	var conninfo string
	err := withConn(ctx, env, func(db api.DB) error {
		var err error
		conninfo, err = api.NodeConninfo(ctx, db, peer)
		return err
	})
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "42501" {
		return nil, "", fmt.Errorf("reading node %s's conninfo needs a superuser (it may hold a password): give node %s's own connection string instead (schema export: as --db instead of --peer; analyze-overlap: as --peer-db)",
			peer, peer)
	}
	if err != nil {
		return nil, "", err
	}
	cfg, err := dbconn.PeerConfig(conninfo, exportApp)
	if err != nil {
		return nil, "", fmt.Errorf("node %s's conninfo: %w", peer, err)
	}
	return cfg, "node " + peer, nil
}

// exportSchema dumps the schema of the tables in scope of the node cfg reaches as a plain
// script with a header, names holding control characters written with Unicode escapes
// (sqlSafe), and returns it with the number of tables in scope. With a tables filter only those
// tables are dumped (pg_dump --table: the types and functions they use are not); otherwise
// whole schemas (pg_dump --schema), steep_repl's left out.
func exportSchema(ctx context.Context, cfg *pgx.ConnConfig, progs pgtools.Programs, scope api.SchemaScope, from string) (string, int, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", 0, fmt.Errorf("connect to %s (%s): %w", from, dbconn.Describe(cfg), dbconn.RedactError(err, ""))
	}
	defer conn.Close(context.Background())
	info, err := api.GetSnapshotServer(ctx, conn)
	if err != nil {
		return "", 0, err
	}
	found, err := api.SchemaExportTables(ctx, conn, nilIfEmpty(scope.Tables), nilIfEmpty(scope.Schemas))
	if err != nil {
		return "", 0, err
	}
	selectArgs, err := exportSelection(ctx, conn, scope, found, from)
	if err != nil {
		return "", 0, err
	}
	script, version, err := progs.SchemaScript(ctx, &cfg.Config, pgtools.Server{Version: info.Version, VersionNum: info.VersionNum},
		exportApp, selectArgs, []string{"public"})
	if err != nil {
		return "", 0, err
	}
	header := fmt.Sprintf("-- Schema of %d table(s) of %s (database %s, PostgreSQL %s): pg_dump %s --schema-only, exported by steep-repl %s at %s\n",
		len(found), from, info.Database, info.Version, version, Version, time.Now().UTC().Format(time.RFC3339))
	return sqlSafe(header + tableSchemas(scope, found) + script), len(found), nil
}

// exportSelection is pg_dump's selection of what scope names: a --table of each table (all of
// them must exist), else a --schema of each schema (those named must exist).
func exportSelection(ctx context.Context, db api.DB, scope api.SchemaScope, found []api.TableName, from string) ([]string, error) {
	var args []string
	if len(scope.Tables) > 0 {
		var missing []string
		for _, want := range scope.Tables {
			if !slices.ContainsFunc(found, func(t api.TableName) bool {
				return t.Schema+"."+t.Table == want || (t.Schema == "public" && t.Table == want)
			}) {
				missing = append(missing, progress.Escape(want))
			}
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("no such table(s) on %s within the filters: %s", from, strings.Join(missing, ", "))
		}
		for _, t := range found {
			args = append(args, "--table="+pgtools.NamePattern(t.Schema, t.Table))
		}
		return args, nil
	}
	schemas, err := api.SchemaExportSchemas(ctx, db, nilIfEmpty(scope.Schemas))
	if err != nil {
		return nil, err
	}
	for _, want := range scope.Schemas {
		if !slices.Contains(schemas, want) {
			return nil, fmt.Errorf("no such schema on %s: %s", from, progress.Escape(want))
		}
	}
	if len(schemas) == 0 {
		return nil, fmt.Errorf("%s has no user schema to export", from)
	}
	for _, s := range schemas {
		args = append(args, "--schema="+pgtools.NamePattern(s, ""))
	}
	return args, nil
}

// tableSchemas creates, for a tables filter, the schemas of those tables but public (pg_dump
// --table dumps the tables alone), so the script restores into an empty database.
func tableSchemas(scope api.SchemaScope, found []api.TableName) string {
	if len(scope.Tables) == 0 {
		return ""
	}
	var b strings.Builder
	var done []string
	for _, t := range found {
		if t.Schema != "public" && !slices.Contains(done, t.Schema) {
			done = append(done, t.Schema)
			fmt.Fprintf(&b, "CREATE SCHEMA IF NOT EXISTS %s;\n", pgx.Identifier{t.Schema}.Sanitize())
		}
	}
	return b.String()
}

// nilIfEmpty is nil for an empty list: no filter (SQL NULL).
func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}
