package model

import (
	"cmp"
	"context"
	"regexp"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/dbconn"
)

// mergeDuties lists the duties of every node read live (a node's own reading; a database
// without a local node by its address), failing duties first, then by node and name.
func mergeDuties(rs []Reading, owner map[string]*Reading) []DutyRow {
	var out []DutyRow
	for i := range rs {
		r := &rs[i]
		if r.Link != LinkOK || r.Stale {
			continue
		}
		name := r.LocalNode
		if name == "" {
			name = "(" + r.Addr + ")"
		} else if owner[name] != r {
			continue // another endpoint reads this node
		}
		for _, d := range r.Duties {
			out = append(out, DutyRow{Node: name, Duty: d})
		}
	}
	slices.SortFunc(out, func(a, b DutyRow) int {
		if a.Failing() != b.Failing() {
			if a.Failing() {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// readDuties reads the supervisor's duties. A session that may not read them (not in
// steep_repl_admin) shows none rather than failing the poll. An error text is the server's
// own; it is redacted of every password the console knows before it reaches the screen.
func (e *endpoint) readDuties(ctx context.Context, conn *pgx.Conn, r *Reading) error {
	duties, err := api.ListSupervisorDuties(ctx, conn)
	if api.SQLState(err) == insufficientPrivilege {
		return nil
	}
	if err != nil {
		return err
	}
	passwords := []string{e.cfg.Password}
	for _, c := range r.peerConfigs {
		passwords = append(passwords, c.Password)
	}
	for i, d := range duties {
		if d.LastError != nil {
			s := redactPasswords(*d.LastError, passwords)
			duties[i].LastError = &s
		}
	}
	r.Duties = duties
	return nil
}

// passwordKV and passwordURL match a password written in a conninfo, key=value or URL.
var (
	passwordKV  = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'"]+)`)
	passwordURL = regexp.MustCompile(`(://[^:/@\s]*:)[^@/\s]+@`)
)

// redactPasswords removes the given passwords, and any password written in a conninfo, from s.
func redactPasswords(s string, passwords []string) string {
	s = dbconn.Redact(s, "", passwords...)
	s = passwordKV.ReplaceAllString(s, "${1}****")
	return passwordURL.ReplaceAllString(s, "${1}****@")
}
