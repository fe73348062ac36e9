package api

import (
	"embed"
	"fmt"
	"io/fs"

	"github.com/steepdb/steep_repl/internal/api/internal/querygen"
)

// The package's SQL lives in its .sql files as "-- name: X" blocks. queries_gen.go, written
// by go generate from those files, has one constant qX of type query per block: a call of a
// query no .sql file defines does not compile.
//
//go:generate go run gen.go

//go:embed *.sql
var queryFiles embed.FS

// querySQL is the text of each query, by query.
var querySQL = loadQueries(queryFiles)

// loadQueries reads the blocks of every .sql file of fsys, by query. A malformed file, or a
// generated constant no file defines (a .sql file changed without go generate), is a build
// defect: it panics when the program starts, and the package's tests catch it first.
func loadQueries(fsys fs.FS) []string {
	qs, err := querygen.Load(fsys)
	if err != nil {
		panic("api: " + err.Error())
	}
	byName := make(map[string]string, len(qs))
	for _, x := range qs {
		byName[x.Name] = x.SQL
	}
	out := make([]string, len(queryNames))
	for id, name := range queryNames {
		sql, ok := byName[name]
		if !ok {
			panic(fmt.Sprintf("api: query %s has a constant but no -- name: block: run go generate ./internal/api", name))
		}
		out[id] = sql
	}
	return out
}

// q returns the SQL of a query.
func q(id query) string { return querySQL[id] }

// String is the query's block name.
func (id query) String() string { return queryNames[id] }
