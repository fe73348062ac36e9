package api

import (
	"embed"
	"fmt"
	"io/fs"
	"strings"
)

//go:embed *.sql
var queryFiles embed.FS

// queries maps each "-- name: X" block of the package's .sql files to its SQL text.
var queries = loadQueries(queryFiles)

// loadQueries parses every .sql file; a name defined in two files panics like one defined twice.
func loadQueries(fsys fs.FS) map[string]string {
	out := map[string]string{}
	files, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		panic(err)
	}
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			panic(err)
		}
		for name, sql := range parseQueries(string(b)) {
			if _, dup := out[name]; dup {
				panic(fmt.Sprintf("api: query %q defined twice (again in %s)", name, f))
			}
			out[name] = sql
		}
	}
	return out
}

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
