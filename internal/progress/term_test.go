package progress

import "testing"

func TestPainter(t *testing.T) {
	var p Painter
	if got := p.End(); got != "" {
		t.Errorf("End before any frame = %q", got)
	}
	steps := []struct {
		line, detail string
		width        int
		want         string
	}{
		{"L1", "D1", 0, "\r\x1b[2KL1\n\r\x1b[2KD1"},
		{"L2", "", 0, "\x1b[1A\r\x1b[2KL2\n\r\x1b[2K"},
		{"abcdef", "xyz", 5, "\x1b[1A\r\x1b[2Kabcd\n\r\x1b[2Kxyz"},
	}
	for i, s := range steps {
		if got := p.Frame(s.line, s.detail, s.width); got != s.want {
			t.Errorf("frame %d = %q, want %q", i, got, s.want)
		}
	}
	if got := p.End(); got != "\n" {
		t.Errorf("End = %q, want a newline", got)
	}
	if got := p.End(); got != "" {
		t.Errorf("second End = %q, want nothing", got)
	}
	if got, want := p.Frame("L", "D", 0), "\r\x1b[2KL\n\r\x1b[2KD"; got != want {
		t.Errorf("frame after End = %q, want %q (no cursor-up)", got, want)
	}
}

func TestFit(t *testing.T) {
	tests := []struct {
		s    string
		cols int
		want string
	}{
		{"hello", 0, "hello"},
		{"hello", -1, "hello"},
		{"hello", 10, "hello"},
		{"hello", 5, "hello"},
		{"hello", 3, "hel"},
		{"[██░░] 50%", 4, "[██░"},
		{"a \x1b[33mCOPYING\x1b[0m b", 20, "a \x1b[33mCOPYING\x1b[0m b"},
		{"a \x1b[33mCOPYING\x1b[0m b", 5, "a \x1b[33mCOP\x1b[0m"},
		{"ab\x1b[", 5, "ab\x1b["},
	}
	for _, tt := range tests {
		if got := Fit(tt.s, tt.cols); got != tt.want {
			t.Errorf("Fit(%q, %d) = %q, want %q", tt.s, tt.cols, got, tt.want)
		}
	}
}
