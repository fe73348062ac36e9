package pgtools

import (
	"bufio"
	"strings"
)

// WithoutSchemaEntries comments out, in a `pg_restore -l` listing, the SCHEMA entries of
// schemas (lines "<id>; <oid> <oid> SCHEMA - <name> <owner>"), and with comments their
// COMMENT entries too ("<id>; 0 0 COMMENT - SCHEMA <name> <owner>"): a schema that exists
// already is the target's, and only its owner may comment on it.
func WithoutSchemaEntries(toc string, schemas []string, comments bool) string {
	var out strings.Builder
	sc := bufio.NewScanner(strings.NewReader(toc))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if isSchemaEntry(line, schemas, comments) {
			out.WriteString(";")
		}
		out.WriteString(line)
		out.WriteString("\n")
	}
	return out.String()
}

func isSchemaEntry(line string, schemas []string, comments bool) bool {
	if strings.HasPrefix(line, ";") {
		return false
	}
	_, rest, ok := strings.Cut(line, "; ")
	if !ok {
		return false
	}
	f := strings.SplitN(rest, " ", 5) // tableoid, oid, desc, namespace, "tag owner"
	if len(f) < 5 || f[3] != "-" {
		return false
	}
	tag := f[4]
	switch {
	case f[2] == "SCHEMA":
	case f[2] == "COMMENT" && comments && strings.HasPrefix(tag, "SCHEMA "):
		tag = strings.TrimPrefix(tag, "SCHEMA ")
	default:
		return false
	}
	for _, s := range schemas {
		if strings.HasPrefix(tag, s+" ") || tag == s {
			return true
		}
	}
	return false
}
