package progress

import (
	"strings"
	"unicode/utf8"
)

// Painter redraws the two status lines (Line and Detail) in place on a terminal. The
// zero value is ready; it only builds strings, the caller writes them.
type Painter struct{ drawn bool }

// Frame returns the bytes that replace the previous frame (if any) with line and detail:
// cursor up to the bar line after the first frame, then for each line a carriage return,
// ANSI clear-line and the text cut to width-1 columns (width 0: no cut), so that no line
// wraps and the cursor-up lands on the bar line. The cursor is left at the end of the
// detail line.
func (p *Painter) Frame(line, detail string, width int) string {
	var b strings.Builder
	if p.drawn {
		b.WriteString("\x1b[1A")
	}
	b.WriteString("\r\x1b[2K" + Fit(line, width-1) + "\n\r\x1b[2K" + Fit(detail, width-1))
	p.drawn = true
	return b.String()
}

// End returns what closes the display: a newline after a drawn frame, else "". The next
// Frame starts afresh.
func (p *Painter) End() string {
	if p.drawn {
		p.drawn = false
		return "\n"
	}
	return ""
}

// Fit cuts s to at most cols visible runes (cols <= 0: no cut); ANSI escape sequences
// (ESC [ ... final byte) take no room and are kept, and a cut string that had any gets a
// color reset. Every rune counts as one column, as the bar's block characters do.
func Fit(s string, cols int) string {
	if cols <= 0 {
		return s
	}
	var b strings.Builder
	n, escaped := 0, false
	for i := 0; i < len(s); {
		if s[i] == '\x1b' && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
				j++
			}
			if j < len(s) {
				j++
			}
			b.WriteString(s[i:j])
			i, escaped = j, true
			continue
		}
		if n == cols {
			if escaped {
				b.WriteString(ansiReset)
			}
			return b.String()
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		b.WriteString(s[i : i+size])
		i += size
		n++
	}
	return b.String()
}
