package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/progress"
)

// errSchemasDiffer ends schema compare and schema diff with exit status 1 when the
// schemas differ, as diff(1) does.
type errSchemasDiffer struct {
	n    int
	what string
	peer string
}

func (e errSchemasDiffer) Error() string {
	return fmt.Sprintf("%d %s differ from node %s", e.n, e.what, e.peer)
}

func schemaCommands() []command {
	return []command{schemaCaptureCommand(), schemaCompareCommand(), schemaDiffCommand(), schemaExportCommand(),
		schemaSyncCommand(), schemaDriftCommand()}
}

func schemaCaptureCommand() command {
	var list bool
	return command{
		name: "schema capture", summary: "record the fingerprint of every table of the --db node (steep_repl.schema_fingerprints)",
		example: "steep-repl schema capture --db postgres://10.0.0.2/postgres --list",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&list, "list", false, "then list the captured fingerprints")
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) != 0 {
				return usageError{"takes no arguments"}
			}
			return withConn(ctx, env, func(db api.DB) error {
				n, err := api.CaptureFingerprints(ctx, db)
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "captured the fingerprints of %d table(s)\n", n)
				if !list {
					return nil
				}
				fps, err := api.ListFingerprints(ctx, db)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TABLE\tFINGERPRINT\tSINCE")
				for _, f := range fps {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", progress.Ident(f.Schema, f.Table), progress.Escape(f.Fingerprint), f.CapturedAt.Local().Format(time.DateTime))
				}
				return tw.Flush()
			})
		},
	}
}

func schemaCompareCommand() command {
	var peer string
	var all, asJSON bool
	return command{
		name: "schema compare", summary: "compare every table's fingerprint with --peer's: MATCH, MISMATCH, LOCAL_ONLY, REMOTE_ONLY (exit 1 when any differs)",
		example: "steep-repl schema compare --peer node_a --db postgres://10.0.0.2/postgres",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&peer, "peer", "", "registered node to compare with (required)")
			fs.BoolVar(&all, "all", false, "list matching tables too")
			fs.BoolVar(&asJSON, "json", false, "print the rows as a JSON array")
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) != 0 || peer == "" {
				return usageError{"need --peer NODE"}
			}
			return withConn(ctx, env, func(db api.DB) error {
				rows, err := api.CompareFingerprints(ctx, db, peer)
				if err != nil {
					return err
				}
				if asJSON {
					if err := writeSchemaJSON(env.Stdout, rows); err != nil {
						return err
					}
				} else if err := printSchemaCompare(env.Stdout, rows, all); err != nil {
					return err
				}
				if n := countSchemaDiffering(rows); n > 0 {
					return errSchemasDiffer{n, "table(s)", peer}
				}
				return nil
			})
		},
	}
}

func schemaDiffCommand() command {
	var peer, schema, table string
	var asJSON bool
	return command{
		name: "schema diff", summary: "list each difference with --peer: missing, extra, type, default, nullability, primary key (exit 1 when any)",
		example: "steep-repl schema diff --peer node_a --schema public --table orders",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&peer, "peer", "", "registered node to compare with (required)")
			fs.StringVar(&schema, "schema", "", "only this schema (name as stored, unquoted)")
			fs.StringVar(&table, "table", "", "only this table (needs --schema)")
			fs.BoolVar(&asJSON, "json", false, "print the differences as a JSON array")
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) != 0 || peer == "" {
				return usageError{"need --peer NODE"}
			}
			if table != "" && schema == "" {
				return usageError{"--table needs --schema"}
			}
			return withConn(ctx, env, func(db api.DB) error {
				diffs, err := api.SchemaDiff(ctx, db, peer, schema, table)
				if err != nil {
					return err
				}
				if asJSON {
					if err := writeSchemaJSON(env.Stdout, diffs); err != nil {
						return err
					}
				} else {
					for _, d := range diffs {
						fmt.Fprintln(env.Stdout, progress.Escape(d.Description))
					}
					if len(diffs) == 0 {
						fmt.Fprintf(env.Stdout, "no differences with node %s\n", peer)
					}
				}
				if len(diffs) > 0 {
					return errSchemasDiffer{len(diffs), "definition(s)", peer}
				}
				return nil
			})
		},
	}
}

func schemaSyncCommand() command {
	var peer, mode, tables, schemas string
	var confirm, asJSON bool
	return command{
		name: "schema sync", summary: "make the --db node's tables agree with --peer's: --mode strict (check), auto (apply safe DDL), manual (--confirm)",
		example: "steep-repl schema sync --peer node_a --mode auto --db postgres://10.0.0.2/postgres",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&peer, "peer", "", "registered node whose tables are the reference (required)")
			fs.StringVar(&mode, "mode", "", "strict, auto or manual (default: the configured default_mode, strict)")
			fs.BoolVar(&confirm, "confirm", false, "with --mode manual: go on despite differences (recorded as accepted)")
			fs.StringVar(&tables, "tables", "", "only these tables, comma-separated: schema.table, or table for public (default: all)")
			fs.StringVar(&schemas, "schemas", "", "only tables of these schemas, comma-separated (default: all)")
			fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) != 0 || peer == "" {
				return usageError{"need --peer NODE"}
			}
			opts := api.SyncOptions{SchemaScope: api.SchemaScope{Tables: splitList(tables), Schemas: splitList(schemas)}, Confirm: confirm}
			return withConn(ctx, env, func(db api.DB) error {
				r, err := api.SchemaSync(ctx, db, peer, mode, opts)
				if err != nil {
					return err
				}
				if asJSON {
					return writeSchemaJSON(env.Stdout, r)
				}
				printSchemaSync(env.Stdout, r)
				return nil
			})
		},
	}
}

func schemaDriftCommand() command {
	var asJSON bool
	return command{
		name: "schema drift", args: "[NODE]",
		summary: "check now whether the --db node still matches its init source (a SYNCHRONIZED node with differences goes to DIVERGED)",
		example: "steep-repl schema drift --db postgres://10.0.0.2/postgres",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) > 1 {
				return usageError{"takes at most one NODE"}
			}
			node := ""
			if len(args) == 1 {
				node = args[0]
			}
			return withConn(ctx, env, func(db api.DB) error {
				r, err := api.CheckDrift(ctx, db, node)
				if err != nil {
					return err
				}
				if asJSON {
					return writeSchemaJSON(env.Stdout, r)
				}
				printSchemaDrift(env.Stdout, r)
				return nil
			})
		},
	}
}

// printSchemaCompare writes the tables that differ (every table with all) and a summary line.
func printSchemaCompare(w io.Writer, rows []api.TableFingerprint, all bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	shown := 0
	for _, r := range rows {
		if r.Status == api.FingerprintMatch && !all {
			continue
		}
		if shown == 0 {
			fmt.Fprintln(tw, "TABLE\tSTATUS\tHERE\tON PEER")
		}
		shown++
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", progress.Ident(r.Schema, r.Table), progress.Escape(r.Status), progress.Escape(shortFP(r.Local)), progress.Escape(shortFP(r.Peer)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, schemaCompareSummary(rows))
	return err
}

// schemaCompareSummary counts the statuses: "12 tables: 10 MATCH, 1 MISMATCH, 1 REMOTE_ONLY".
func schemaCompareSummary(rows []api.TableFingerprint) string {
	counts := map[string]int{}
	for _, r := range rows {
		counts[r.Status]++
	}
	parts := []string{}
	for _, s := range []string{api.FingerprintMatch, api.FingerprintMismatch, api.FingerprintLocalOnly, api.FingerprintRemoteOnly} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	if len(parts) == 0 {
		return "no tables on either side"
	}
	return fmt.Sprintf("%d table(s): %s", len(rows), strings.Join(parts, ", "))
}

func countSchemaDiffering(rows []api.TableFingerprint) int {
	n := 0
	for _, r := range rows {
		if r.Status != api.FingerprintMatch {
			n++
		}
	}
	return n
}

// shortFP abbreviates a fingerprint to 12 hex digits, "-" when the table is absent.
func shortFP(fp *string) string {
	if fp == nil {
		return "-"
	}
	if len(*fp) > 12 {
		return (*fp)[:12]
	}
	return *fp
}

func writeSchemaJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeSchemaFile writes text to path through a temporary file in the same directory, so a
// failed export never leaves half a file.
func writeSchemaFile(path, text string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func printSchemaSync(w io.Writer, r *api.SyncReport) {
	switch r.Status {
	case "match":
		fmt.Fprintf(w, "the %d table(s) in scope match node %s (mode %s)\n", r.Tables, r.Peer, r.Mode)
		return
	case "synced":
		fmt.Fprintf(w, "%s now matches node %s: %d statement(s) applied for %d difference(s)\n", r.Node, r.Peer, len(r.Applied), len(r.Differences))
		for _, s := range r.Applied {
			fmt.Fprintf(w, "  %s;\n", sqlSafe(s))
		}
		return
	}
	fmt.Fprintf(w, "%d difference(s) with node %s accepted (mode %s, recorded as an event):\n", len(r.Differences), r.Peer, r.Mode)
	for _, d := range r.Differences {
		fmt.Fprintf(w, "  %s\n", progress.Escape(d))
	}
}

func printSchemaDrift(w io.Writer, r *api.DriftReport) {
	if r.Status == "match" {
		fmt.Fprintf(w, "%s matches its source %s\n", r.Node, r.Source)
		return
	}
	fmt.Fprintf(w, "%s has drifted from its source %s (%d difference(s))", r.Node, r.Source, len(r.Differences))
	if r.Diverged {
		fmt.Fprint(w, "; it is now DIVERGED")
	}
	fmt.Fprintln(w)
	for _, d := range r.Differences {
		fmt.Fprintf(w, "  %s\n", progress.Escape(d))
	}
}
