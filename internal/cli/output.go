package cli

import (
	"io"
	"sync"
	"unicode/utf8"

	"github.com/steepdb/steep_repl/internal/progress"
)

// safeWriter is what every command writes to (Env.Stdout and Env.Stderr): all text passes
// through progress.Text on its way out, so no control character from the database or the
// user (a table name, a path, a server's error message) reaches the terminal raw, whichever
// printer wrote it; JSON stays valid (see progress.Escape). Only painter frames and colored
// lines, built by package progress with their data already escaped, go to the terminal
// unfiltered, through terminal().
type safeWriter struct {
	w    io.Writer
	mu   sync.Mutex // the sidecar's logger and a command may write at once
	tail []byte     // the start of a UTF-8 sequence cut by the end of a Write, held for the next
}

func newSafeWriter(w io.Writer) *safeWriter { return &safeWriter{w: w} }

// Write escapes p and writes it; it reports all of p as written unless the writer failed.
func (s *safeWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(p)
	if len(s.tail) > 0 {
		p = append(s.tail, p...)
		s.tail = nil
	}
	if cut := incompleteRune(p); cut > 0 {
		s.tail = append([]byte(nil), p[len(p)-cut:]...)
		p = p[:len(p)-cut]
	}
	if len(p) == 0 {
		return n, nil
	}
	if _, err := io.WriteString(s.w, progress.Text(string(p))); err != nil {
		return 0, err
	}
	return n, nil
}

// flush writes a held partial sequence (escaped: it never became a character).
func (s *safeWriter) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tail) > 0 {
		_, _ = io.WriteString(s.w, progress.Text(string(s.tail)))
		s.tail = nil
	}
}

// incompleteRune is the length of the valid start of a multi-byte UTF-8 sequence at the
// end of p, 0 when p ends with a whole character (or with bytes that are no UTF-8).
func incompleteRune(p []byte) int {
	for i := 1; i <= utf8.UTFMax-1 && i <= len(p); i++ {
		c := p[len(p)-i]
		if c < 0x80 {
			return 0
		}
		if c >= 0xc0 { // a leading byte
			if !utf8.FullRune(p[len(p)-i:]) {
				return i
			}
			return 0
		}
	}
	return 0
}

// terminal returns the writer under w when it is a safeWriter: for output built by package
// progress whose data is escaped already but which holds the CLI's own ANSI codes (colors,
// painter frames), and to ask whether that writer is a terminal. Any other w is returned as
// it is.
func terminal(w io.Writer) io.Writer {
	if s, ok := w.(*safeWriter); ok {
		return s.w
	}
	return w
}
