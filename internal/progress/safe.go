package progress

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Terminal safety: text that comes from the database or the user (names, paths, messages,
// errors) may hold control characters that steer a terminal (ESC ] 0; retitles it, ESC [ 2J
// clears it, a C1 CSI does the same in one character). Everything the CLI prints passes
// through Text on its way out; names are also quoted by Ident.

// Escape returns s with every character that could act on a terminal written out as an
// escape: newline, tab and carriage return as \n, \t and \r, the other C0 controls as
// \x1b-style escapes, DEL and the C1 controls (U+0080..U+009F) as \u007f-style escapes,
// bytes that are not UTF-8 as \xNN. Everything else, a backslash included, is kept.
//
// DEL and C1 get JSON's \u form so that JSON passing through Text stays valid and decodes
// to the same text: encoding/json (and log/slog) escape C0 controls and invalid UTF-8
// themselves but leave DEL and C1 as they are.
func Escape(s string) string { return escape(s, false) }

// Text is Escape for multi-line text (messages, errors, the CLI's own output): newline and
// tab stay, every other control character is escaped.
func Text(s string) string { return escape(s, true) }

// Safe reports whether Text would leave s as it is.
func Safe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\n' && c != '\t' || c >= 0x7f {
			return safeFrom(s[i:])
		}
	}
	return true
}

func safeFrom(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x80 {
			if c < 0x20 && c != '\n' && c != '\t' || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r <= 0x9f {
			return false
		}
		i += size
	}
	return true
}

func escape(s string, keepLines bool) string {
	if keepLines && Safe(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x80 {
			switch {
			case keepLines && (c == '\n' || c == '\t'):
				b.WriteByte(c)
			case c == '\n':
				b.WriteString(`\n`)
			case c == '\t':
				b.WriteString(`\t`)
			case c == '\r':
				b.WriteString(`\r`)
			case c < 0x20:
				fmt.Fprintf(&b, `\x%02x`, c)
			case c == 0x7f:
				b.WriteString(`\u007f`)
			default:
				b.WriteByte(c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, c)
		case r <= 0x9f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// Ident shows a name as PostgreSQL's format('%I.%I') spells it (quote_ident: double quotes
// unless the name is lowercase letters, digits and "_" not starting with a digit and not a
// keyword quote_ident quotes; a '"' inside is doubled), parts joined by ".", so that
// "we.ird".t and we.ird.t differ; then Escape.
func Ident(parts ...string) string {
	q := make([]string, len(parts))
	for i, p := range parts {
		q[i] = quoteIdent(p)
	}
	return Escape(strings.Join(q, "."))
}

func quoteIdent(s string) string {
	plain := s != "" && !reservedKeywords[s]
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = c >= 'a' && c <= 'z' || c == '_' || i > 0 && c >= '0' && c <= '9'
	}
	if plain {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// reservedKeywords are PostgreSQL 18's keywords that are not UNRESERVED_KEYWORD (reserved,
// column-name and type-function-name keywords, src/include/parser/kwlist.h): quote_ident
// quotes them.
var reservedKeywords = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range strings.Fields(`all analyse analyze and any array as asc asymmetric authorization
		between bigint binary bit boolean both case cast char character check coalesce collate collation
		column concurrently constraint create cross current_catalog current_date current_role
		current_schema current_time current_timestamp current_user dec decimal default deferrable desc
		distinct do else end except exists extract false fetch float for foreign freeze from full grant
		greatest group grouping having ilike in initially inner inout int integer intersect interval into
		is isnull join json json_array json_arrayagg json_exists json_object json_objectagg json_query
		json_scalar json_serialize json_table json_value lateral leading least left like limit localtime
		localtimestamp merge_action national natural nchar none normalize not notnull null nullif numeric
		offset on only or order out outer overlaps overlay placing position precision primary real
		references returning right row select session_user setof similar smallint some substring
		symmetric system_user table tablesample then time timestamp to trailing treat trim true union
		unique user using values varchar variadic verbose when where window with xmlattributes xmlconcat
		xmlelement xmlexists xmlforest xmlnamespaces xmlparse xmlpi xmlroot xmlserialize xmltable`) {
		m[k] = true
	}
	return m
}()
