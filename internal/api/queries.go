package api

import (
	_ "embed"
	"fmt"
	"strings"
)

//go:embed queries.sql
var queriesSQL string

// queries maps each "-- name: X" block of queries.sql to its SQL text.
var queries = parseQueries(queriesSQL)

// parseQueries splits a file of "-- name: X" blocks; it panics on a malformed file because
// that is a build defect, caught by the package's tests.
func parseQueries(src string) map[string]string {
	out := map[string]string{}
	var name string
	var body strings.Builder
	flush := func() {
		if name != "" {
			out[name] = strings.TrimSpace(body.String())
		}
		body.Reset()
	}
	for _, line := range strings.Split(src, "\n") {
		if rest, ok := strings.CutPrefix(line, "-- name: "); ok {
			flush()
			name = strings.TrimSpace(rest)
			if _, dup := out[name]; dup {
				panic(fmt.Sprintf("api: query %q defined twice", name))
			}
			continue
		}
		body.WriteString(line)
		body.WriteByte('\n')
	}
	flush()
	return out
}

// q returns the named query; an unknown name is a programming error.
func q(name string) string {
	s, ok := queries[name]
	if !ok {
		panic("api: unknown query " + name)
	}
	return s
}
