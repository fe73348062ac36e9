package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/steepdb/steep_repl/internal/progress"
)

// Version is the steep-repl version (set with -ldflags at build time).
var Version = "1.0.0-dev"

// command is one entry of the command table that drives dispatch and help alike.
type command struct {
	name    string // "node register"
	args    string // positional arguments for the usage line
	summary string
	example string
	run     func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error
	flags   func(fs *flag.FlagSet)
}

// Env is what commands write to.
type Env struct {
	// Stdout and Stderr escape every control character but newline and tab on the way out
	// (safeWriter): whatever a command prints, nothing from the database or the user acts on
	// the terminal.
	Stdout, Stderr io.Writer
	db             *string
}

// usageError is a mistake in how the command was called (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func commands() []command {
	cmds := []command{runCommand(), tickCommand(), versionCommand()}
	cmds = append(cmds, nodeCommands()...)
	cmds = append(cmds, jobCommands()...)
	cmds = append(cmds, initCommands()...)
	cmds = append(cmds, reinitCommand())
	cmds = append(cmds, manualInitCommands()...)
	cmds = append(cmds, snapshotCommands()...)
	cmds = append(cmds, schemaCommands()...)
	cmds = append(cmds, compareCommands()...)
	cmds = append(cmds, mergeCommand())
	cmds = append(cmds, holdSnapshotCommand())
	return cmds
}

// Main runs the command line and returns the process exit status.
func Main(ctx context.Context, argv []string, stdout, stderr io.Writer) int {
	out, errOut := newSafeWriter(stdout), newSafeWriter(stderr)
	defer out.flush()
	defer errOut.flush()
	env := &Env{Stdout: out, Stderr: errOut}
	cmds := commands()
	if len(argv) == 0 || argv[0] == "-h" || argv[0] == "--help" || argv[0] == "help" {
		printUsage(env.Stdout, cmds)
		return 0
	}
	cmd, rest, ok := findCommand(cmds, argv)
	if !ok {
		fmt.Fprintf(env.Stderr, "steep-repl: unknown command %q\n\n", strings.Join(argv, " "))
		printUsage(env.Stderr, cmds)
		return 2
	}
	fs := flag.NewFlagSet("steep-repl "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	env.db = fs.String("db", "", "node to connect to: postgres:// URL or conninfo (default: libpq environment, PGHOST etc.)")
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n\n%s\n\nexample:\n  %s\n\nflags:\n", strings.TrimSpace("steep-repl "+cmd.name+" [flags] "+cmd.args), cmd.summary, cmd.example)
		fs.PrintDefaults()
	}
	if err := fs.Parse(interleave(rest)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if cmd.args == "" && fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "steep-repl %s: takes no arguments, not %q\n", cmd.name, strings.Join(fs.Args(), " "))
		fs.Usage()
		return 2
	}
	if err := cmd.run(ctx, env, fs, fs.Args()); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(env.Stderr, "steep-repl %s: %s\n", cmd.name, ue.msg)
			fs.Usage()
			return 2
		}
		printError(env.Stderr, cmd.name, err)
		return 1
	}
	return 0
}

// interleave moves flags before positional arguments so "node register a --conninfo x" works.
func interleave(args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			flags = append(flags, a)
			if !strings.Contains(a, "=") && i+1 < len(args) && isFlagValue(args[i+1]) && !isBoolFlag(a) {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, a)
	}
	return append(flags, pos...)
}

// isFlagValue reports whether a, after a flag that takes a value, is that value: anything but
// another flag; "-" (stdin/stdout, as in --output -) and negative numbers are values.
func isFlagValue(a string) bool {
	if a == "-" || !strings.HasPrefix(a, "-") {
		return true
	}
	_, err := strconv.ParseFloat(a, 64)
	return err == nil
}

// boolFlags are the flags that take no value (kept in one place for interleave).
var boolFlags = map[string]bool{"local": true, "wait": true, "json": true, "follow": true, "json-progress": true, "quiet": true, "no-color": true, "force": true, "export": true, "subscribe": true, "truncate": true, "all": true, "confirm": true, "list": true, "full": true, "cascade": true}

func isBoolFlag(a string) bool { return boolFlags[strings.TrimLeft(a, "-")] }

func findCommand(cmds []command, argv []string) (command, []string, bool) {
	for _, n := range []int{2, 1} {
		if len(argv) < n {
			continue
		}
		name := strings.Join(argv[:n], " ")
		for _, c := range cmds {
			if c.name == name {
				return c, argv[n:], true
			}
		}
	}
	return command{}, nil, false
}

func printUsage(w io.Writer, cmds []command) {
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	fmt.Fprintf(w, "steep-repl %s: node initialization and snapshots for PostgreSQL logical replication\n\n", Version)
	fmt.Fprintln(w, "usage: steep-repl <command> [--db URL] [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-28s %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	fmt.Fprintln(w, "\n--db takes a postgres:// URL or a conninfo; without it the libpq environment is used")
	fmt.Fprintln(w, "(PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGSERVICE), as psql does.")
	fmt.Fprintln(w, "Run 'steep-repl <command> --help' for a command's flags and an example.")
}

// printError shows a PostgreSQL error with its SQLSTATE, detail and hint; the message is
// one line, a newline in it (in a name, say) escaped like any control character.
func printError(w io.Writer, name string, err error) {
	fmt.Fprintf(w, "steep-repl %s: %s\n", name, progress.Escape(err.Error()))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if pgErr.Detail != "" {
			fmt.Fprintf(w, "  DETAIL: %s\n", pgErr.Detail)
		}
		if pgErr.Hint != "" {
			fmt.Fprintf(w, "  HINT: %s\n", pgErr.Hint)
		} else if missingExtension(pgErr) {
			fmt.Fprintln(w, "  HINT: Is the steep_repl extension installed (and up to date) in this database? "+
				"A superuser runs CREATE EXTENSION steep_repl CASCADE, or ALTER EXTENSION steep_repl UPDATE.")
		}
	}
}

// missingExtension reports whether err says a steep_repl schema, table or function does not
// exist: the database --db names lacks the extension, or has an older version of it.
func missingExtension(err *pgconn.PgError) bool {
	switch err.Code {
	case "3F000", "42P01", "42883": // invalid_schema_name, undefined_table, undefined_function
		return strings.Contains(err.Message, "steep_repl")
	}
	return false
}

func versionCommand() command {
	return command{
		name: "version", summary: "print the steep-repl version", example: "steep-repl version",
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			fmt.Fprintln(env.Stdout, "steep-repl", Version)
			return nil
		},
	}
}
