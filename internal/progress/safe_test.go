package progress

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestEscapeWritesEveryControlCharacterAsAnEscape(t *testing.T) {
	for in, want := range map[string]string{
		"":                                    "",
		"plain é ü 日本":                        "plain é ü 日本",
		"\x1b]0;PWNED\x07\x1b[2J\x1b[31mEVIL": `\x1b]0;PWNED\x07\x1b[2J\x1b[31mEVIL`,
		"a\nb\tc\rd":                          `a\nb\tc\rd`,
		"del\x7f":                             `del\u007f`,
		"c1 \u009b2J \u0085":                  `c1 \u009b2J \u0085`,
		"bad \xff\x9b utf-8":                  `bad \xff\x9b utf-8`,
		`back\slash`:                          `back\slash`,
		"\u00a0nbsp stays":                    "\u00a0nbsp stays",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTextKeepsNewlineAndTabOnly(t *testing.T) {
	for in, want := range map[string]string{
		"line 1\n\tline 2":         "line 1\n\tline 2",
		"over\rwrite\x1b[2K":       `over\rwrite\x1b[2K`,
		"\x00\x01\x08\x0b\x0c\x1f": `\x00\x01\x08\x0b\x0c\x1f`,
		"\u0080\u009f\u00a0":       `\u0080\u009f` + "\u00a0",
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
		if Safe(in) != (in == want) {
			t.Errorf("Safe(%q) = %v", in, Safe(in))
		}
	}
}

func TestIdentQuotesLikeFormatI(t *testing.T) {
	for _, c := range []struct {
		parts []string
		want  string
	}{
		{[]string{"public", "orders"}, "public.orders"},
		{[]string{"we.ird", "t"}, `"we.ird".t`},
		{[]string{"we", "ird.t"}, `we."ird.t"`},
		{[]string{"public", "Order Items"}, `public."Order Items"`},
		{[]string{"public", `say "hi"`}, `public."say ""hi"""`},
		{[]string{"public", "select"}, `public."select"`},
		{[]string{"public", "name"}, "public.name"}, // unreserved keyword: bare, as quote_ident
		{[]string{"public", "t$1"}, `public."t$1"`},
		{[]string{"public", "1t"}, `public."1t"`},
		{[]string{"public", "_t1"}, "public._t1"},
		{[]string{"public", "2fast"}, `public."2fast"`},
		{[]string{"Sales Dept", "Orders"}, `"Sales Dept"."Orders"`},
		{[]string{"public", "été"}, `public."été"`},
		{[]string{"public", ""}, `public.""`},
		{[]string{"public", "\x1b]0;PWNED\x07\x1b[2J"}, `public."\x1b]0;PWNED\x07\x1b[2J"`},
		{[]string{"a\nb"}, `"a\nb"`},
	} {
		if got := Ident(c.parts...); got != c.want {
			t.Errorf("Ident(%q) = %s, want %s", c.parts, got, c.want)
		}
	}
}

func TestJSONThroughTextStaysValidAndDecodesToTheSameValue(t *testing.T) {
	name := "\x1b]0;PWNED\x07 del\x7f c1\u009b\u0085 ok é\n"
	raw, err := json.MarshalIndent(map[string]string{"name": name}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got := Text(string(raw))
	if !Safe(got) || Safe(string(raw)) {
		t.Fatalf("Text left control characters in %q (from %q)", got, raw)
	}
	var back map[string]string
	if err := json.Unmarshal([]byte(got), &back); err != nil || back["name"] != name {
		t.Fatalf("Text(%s) = %s: %v, %q", raw, got, err, back["name"])
	}
}

func TestLineDetailAndSummaryEscapeWhatTheServerSent(t *testing.T) {
	evil := "\x1b]0;PWNED\x07\x1b[2J\u009b31m"
	p := Snapshot{Node: "b" + evil, Source: "a" + evil, State: "copying", Step: evil, Message: evil,
		CurrentTables: []string{`public."` + evil + `"`}}
	for _, s := range []string{Line(p, false), Detail(p), Summary(p)} {
		if !Safe(s) {
			t.Errorf("raw control characters in %q", s)
		}
	}
	p.State, p.CurrentTables = "failed", nil
	if d := Detail(p); !Safe(d) {
		t.Errorf("raw control characters in %q", d)
	}
	p.State = "synchronized"
	if d := Detail(p); !Safe(d) {
		t.Errorf("raw control characters in %q", d)
	}
	// Color codes are the only escapes Line writes itself.
	if l := Line(Snapshot{State: "copying", Step: evil}, true); !strings.Contains(l, ansiYellow+"COPYING"+ansiReset+` \x1b]0;`) {
		t.Errorf("colored line %q", l)
	}
}
