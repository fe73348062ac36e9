//go:build ignore

// gen.go writes queries_gen.go from the "-- name:" blocks of the package's .sql files; run
// it with go generate ./internal/api.
package main

import (
	"log"
	"os"

	"github.com/steepdb/steep_repl/internal/api/internal/querygen"
)

func main() {
	qs, err := querygen.Load(os.DirFS("."))
	if err != nil {
		log.Fatal(err)
	}
	src, err := querygen.Generate(qs)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("queries_gen.go", src, 0o644); err != nil {
		log.Fatal(err)
	}
}
