package cli

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/dbconn"
	"github.com/steepdb/steep_repl/internal/overlap"
	"github.com/steepdb/steep_repl/internal/progress"
)

// errNodesDiffer ends verify with exit status 1 when rows differ, as diff(1) does.
type errNodesDiffer struct {
	n    int
	peer string
}

func (e errNodesDiffer) Error() string {
	return fmt.Sprintf("%d row(s) differ from node %s", e.n, e.peer)
}

func compareCommands() []command {
	return []command{verifyCommand(), analyzeOverlapCommand()}
}

// peerTables are the flags every comparison with another node takes.
type peerTables struct {
	peer, tables string
	asJSON       bool
}

func (p *peerTables) register(fs *flag.FlagSet, jsonWhat string) {
	fs.StringVar(&p.peer, "peer", "", "registered node to compare with (required)")
	fs.StringVar(&p.tables, "tables", "", "only these tables, comma-separated: schema.table, or table for public (default: every table)")
	fs.BoolVar(&p.asJSON, "json", false, "print "+jsonWhat+" as a JSON array")
}

func (p *peerTables) check(args []string) error {
	if len(args) != 0 || p.peer == "" {
		return usageError{"need --peer NODE"}
	}
	return nil
}

func verifyCommand() command {
	var pt peerTables
	var opts api.VerifyOptions
	return command{
		name: "verify", summary: "prove the --db node holds the same rows as --peer (the node it replicates from), by primary key and row hash (exit 1 when any differs)",
		example: "steep-repl verify --peer node_a --tables public.orders,public.order_lines --db postgres://10.0.0.2/postgres",
		flags: func(fs *flag.FlagSet) {
			pt.register(fs, "the differences")
			fs.IntVar(&opts.Rounds, "rounds", 0, "re-reads of a row the peer keeps changing before it is reported unsettled, 1-100 (default 10)")
			fs.IntVar(&opts.CatchUpTimeout, "catch-up-timeout", 0, "seconds to wait for this node to apply the peer's changes before a re-read (default 60)")
			fs.IntVar(&opts.StatementTimeout, "statement-timeout", 0, "seconds one read of a table on the peer may take (default 3600)")
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if err := pt.check(args); err != nil {
				return err
			}
			peer, tables, asJSON := pt.peer, pt.tables, pt.asJSON
			return withConn(ctx, env, func(db api.DB) error {
				diffs, err := api.Verify(ctx, db, peer, splitList(tables), opts)
				if err != nil {
					return err
				}
				if asJSON {
					if err := writeSchemaJSON(env.Stdout, diffs); err != nil {
						return err
					}
				} else if len(diffs) == 0 {
					fmt.Fprintf(env.Stdout, "every row equals node %s's\n", peer)
				} else {
					tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "TABLE\tKEY\tKIND")
					for _, d := range diffs {
						fmt.Fprintf(tw, "%s.%s\t%s\t%s\n", progress.Escape(d.Schema), progress.Escape(d.Table), progress.Escape(string(d.Key)), d.Kind)
					}
					if err := tw.Flush(); err != nil {
						return err
					}
				}
				if len(diffs) > 0 {
					return errNodesDiffer{len(diffs), peer}
				}
				return nil
			})
		},
	}
}

func analyzeOverlapCommand() command {
	var pt peerTables
	var peerDB string
	var inServer bool
	return command{
		name: "analyze-overlap", summary: "count, per table, the rows the --db node and --peer hold identically, with other values, or alone (only keys and row hashes cross the network)",
		example: "steep-repl analyze-overlap --peer node_a --peer-db postgres://dba@10.0.0.1/postgres --tables public.customers --json",
		flags: func(fs *flag.FlagSet) {
			pt.register(fs, "the counts")
			fs.StringVar(&peerDB, "peer-db", "", "the peer's own connection string for you (as the --db of a command run on it): steep-repl streams each table's keys and row hashes from both nodes and joins them itself; "+
				"without it, --peer's registered conninfo for a superuser (it may hold a password), and --in-server for anyone else")
			fs.BoolVar(&inServer, "in-server", false, "run steep_repl.analyze_overlap() in the --db node instead (through dblink, as psql would; slower, more bytes per row); --peer-db is not used")
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if err := pt.check(args); err != nil {
				return err
			}
			peer, tables, asJSON := pt.peer, pt.tables, pt.asJSON
			return withConn(ctx, env, func(db api.DB) error {
				var overlaps []api.Overlap
				var err error
				if !inServer && peerDB == "" {
					// Without --peer-db the stream needs the registered conninfo, a superuser's to read.
					canRead, err := api.CanReadConninfo(ctx, db)
					if err != nil {
						return err
					}
					if !canRead {
						fmt.Fprintln(env.Stderr, "no --peer-db: analyzing in the server (steep_repl.analyze_overlap); give --peer-db with your own connection to the peer for the faster streaming analysis")
						inServer = true
					}
				}
				if inServer {
					overlaps, err = api.AnalyzeOverlap(ctx, db, peer, splitList(tables))
				} else {
					overlaps, err = overlap.Analyze(ctx, db.(*pgx.Conn), func(ctx context.Context) (*pgx.Conn, error) {
						return connectOverlapPeer(ctx, env, peer, peerDB)
					}, peer, splitList(tables), overlap.Chunked)
				}
				if err != nil {
					return err
				}
				if asJSON {
					return writeSchemaJSON(env.Stdout, overlaps)
				}
				tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TABLE\tIDENTICAL\tCONFLICTING\tLOCAL ONLY\tPEER ONLY")
				for _, o := range overlaps {
					fmt.Fprintf(tw, "%s.%s\t%d\t%d\t%d\t%d\n", progress.Escape(o.Schema), progress.Escape(o.Table),
						o.Identical, o.Conflicting, o.LocalOnly, o.PeerOnly)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				fmt.Fprintln(env.Stdout, "keys of the rows that are not identical: SELECT * FROM steep_repl.overlap_rows WHERE peer = '"+progress.Escape(peer)+"'")
				return nil
			})
		},
	}
}

// overlapApp is the application_name of analyze-overlap's session to the peer.
const overlapApp = "steep-repl analyze-overlap"

// connectOverlapPeer opens the session the streaming analysis reads the peer through: peerDB
// (the DBA's own connection to it) or, without it, the peer's registered conninfo as schema
// export resolves --peer; pinned as every peer session, with analyze_overlap's hour-long
// statement timeout (a large table streams for longer than the usual 60 s).
func connectOverlapPeer(ctx context.Context, env *Env, peer, peerDB string) (*pgx.Conn, error) {
	var cfg *pgx.ConnConfig
	var err error
	if peerDB != "" {
		if cfg, err = dbconn.PeerConfig(peerDB, overlapApp); err != nil {
			return nil, usageError{fmt.Sprintf("--peer-db is neither a postgres:// URL nor a key=value conninfo: %v", err)}
		}
	} else if cfg, _, err = exportTarget(ctx, env, peer); err != nil {
		return nil, err
	}
	cfg.RuntimeParams["application_name"] = overlapApp
	cfg.RuntimeParams["statement_timeout"] = "3600s"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to node %s (%s): %w", peer, dbconn.Describe(cfg), dbconn.RedactError(err, peerDB))
	}
	return conn, nil
}
