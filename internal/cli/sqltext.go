package cli

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/steepdb/steep_repl/internal/progress"
)

// sqlSafe returns SQL text that means the same but holds no control character (C0 but
// newline and tab, DEL, C1; in a quoted name, no newline or tab either), so DDL with odd
// names can be printed, copied and run: a quoted identifier or a string constant that holds
// one is rewritten with Unicode escapes
// (U&"\001b..." and U&'\001b...'; an E'...' string gets \x1b-style escapes, a dollar-quoted
// one becomes a U&'...' constant), a comment gets progress.Escape, and a stray control
// character between tokens (which PostgreSQL would refuse anyway) is escaped too, carriage
// return, form feed and vertical tab, which are whitespace to PostgreSQL, turned into a space.
// U&'...' needs standard_conforming_strings on, as plain '...' with a backslash does.
func sqlSafe(sql string) string {
	var b strings.Builder
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '-' && strings.HasPrefix(sql[i:], "--"):
			end := strings.IndexByte(sql[i:], '\n')
			if end < 0 {
				end = len(sql) - i
			}
			b.WriteString(progress.Escape(sql[i : i+end]))
			i += end
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			end := blockCommentEnd(sql, i)
			b.WriteString(progress.Text(sql[i:end]))
			i = end
		case c == '"':
			end := quotedEnd(sql, i, '"', false)
			if end < 0 {
				b.WriteString(progress.Escape(sql[i:]))
				i = len(sql)
				continue
			}
			if body := sql[i+1 : end-1]; progress.Escape(body) == body {
				b.WriteString(sql[i:end])
			} else {
				// A name never keeps a newline or tab raw either.
				b.WriteString(`U&"` + unicodeEscaped(body, false) + `"`)
			}
			i = end
		case c == '\'':
			escapes := i > 0 && (sql[i-1] == 'E' || sql[i-1] == 'e') && (i == 1 || !identByte(sql[i-2]))
			unicode := i > 1 && sql[i-1] == '&' && (sql[i-2] == 'U' || sql[i-2] == 'u')
			end := quotedEnd(sql, i, '\'', escapes)
			if end < 0 {
				b.WriteString(progress.Text(sql[i:]))
				i = len(sql)
				continue
			}
			switch body := sql[i+1 : end-1]; {
			case progress.Safe(body):
				b.WriteString(sql[i:end])
			case escapes:
				b.WriteString("'" + eEscaped(body) + "'")
			case unicode:
				// Already U&'...': its backslashes are escapes; add ours.
				b.WriteString("'" + unicodeControls(body, true) + "'")
			default:
				b.WriteString("U&'" + unicodeEscaped(body, true) + "'")
			}
			i = end
		case c == '$' && (i == 0 || !identByte(sql[i-1])):
			tag, ok := dollarTag(sql[i:])
			if !ok {
				b.WriteByte(c)
				i++
				continue
			}
			rest := sql[i+len(tag):]
			n := strings.Index(rest, tag)
			if n < 0 {
				b.WriteString(progress.Text(sql[i:]))
				i = len(sql)
				continue
			}
			body := rest[:n]
			if progress.Safe(body) {
				b.WriteString(sql[i : i+len(tag)+n+len(tag)])
			} else {
				b.WriteString("U&'" + unicodeEscaped(strings.ReplaceAll(body, "'", "''"), true) + "'")
			}
			i += len(tag) + n + len(tag)
		case c == '\r' || c == '\f' || c == '\v':
			b.WriteByte(' ')
			i++
		default:
			_, size := utf8.DecodeRuneInString(sql[i:])
			b.WriteString(progress.Text(sql[i : i+size]))
			i += size
		}
	}
	return b.String()
}

// quotedEnd is the index after the closing quote of the quoted token starting at sql[i]
// (a doubled quote is part of it; with backslashes, so is \'); -1 when it is unclosed.
func quotedEnd(sql string, i int, quote byte, backslashes bool) int {
	for j := i + 1; j < len(sql); j++ {
		switch sql[j] {
		case '\\':
			if backslashes {
				j++
			}
		case quote:
			if j+1 < len(sql) && sql[j+1] == quote {
				j++
				continue
			}
			return j + 1
		}
	}
	return -1
}

// blockCommentEnd is the index after the end of the (nesting) /* */ comment at sql[i].
func blockCommentEnd(sql string, i int) int {
	depth := 0
	for j := i; j+1 < len(sql); j++ {
		switch sql[j : j+2] {
		case "/*":
			depth++
			j++
		case "*/":
			depth--
			j++
			if depth == 0 {
				return j + 1
			}
		}
	}
	return len(sql)
}

// dollarTag returns the opening $tag$ at the start of s.
func dollarTag(s string) (string, bool) {
	for j := 1; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '$':
			return s[:j+1], true
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80,
			j > 1 && c >= '0' && c <= '9':
		default:
			return "", false
		}
	}
	return "", false
}

func identByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c >= 0x80
}

// isControl reports whether r is a character progress.Text escapes.
func isControl(r rune) bool {
	return r < 0x20 && r != '\n' && r != '\t' || r >= 0x7f && r <= 0x9f
}

// unicodeEscaped is the body of a U&"..." or U&'...' token with the text of body (quotes
// already doubled): backslashes doubled, control characters as \XXXX (newline and tab too
// unless keepLines).
func unicodeEscaped(body string, keepLines bool) string {
	return unicodeControls(strings.ReplaceAll(body, `\`, `\\`), keepLines)
}

func unicodeControls(body string, keepLines bool) string {
	var b strings.Builder
	for i := 0; i < len(body); {
		r, size := utf8.DecodeRuneInString(body[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(progress.Escape(body[i : i+1])) // not UTF-8: cannot be written in SQL text
		case isControl(r) || !keepLines && (r == '\n' || r == '\t'):
			fmt.Fprintf(&b, `\%04X`, r)
		default:
			b.WriteString(body[i : i+size])
		}
		i += size
	}
	return b.String()
}

// eEscaped is the body of an E'...' string with its control characters as \x1b and \u009b
// escapes, which E” strings understand.
func eEscaped(body string) string {
	var b strings.Builder
	for i := 0; i < len(body); {
		r, size := utf8.DecodeRuneInString(body[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(progress.Escape(body[i : i+1]))
		case r < 0x80 && isControl(r):
			fmt.Fprintf(&b, `\x%02X`, r)
		case isControl(r):
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteString(body[i : i+size])
		}
		i += size
	}
	return b.String()
}
