package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/progress"
)

const evil = "\x1b]0;PWNED\x07\x1b[2J\x1b[31mEVIL\u009b2J\x7f"

func TestSafeWriterEscapesWhatEveryPrinterWrites(t *testing.T) {
	var raw bytes.Buffer
	w := newSafeWriter(&raw)
	fmt.Fprintf(w, "table %s\tok\n", evil)
	if got, want := raw.String(), `table \x1b]0;PWNED\x07\x1b[2J\x1b[31mEVIL\u009b2J\u007f`+"\tok\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	// A character cut between two writes is held, not escaped as two broken bytes.
	raw.Reset()
	c1 := []byte("\u009b") // C2 9B
	w.Write([]byte{'a', c1[0]})
	w.Write([]byte{c1[1], 'b'})
	w.Write([]byte("é"[:1]))
	w.Write([]byte("é"[1:]))
	w.flush()
	if got := raw.String(); got != `a\u009bbé` {
		t.Fatalf("split runes: %q", got)
	}
	raw.Reset()
	w.Write([]byte{'x', 0xe6}) // the start of a 3-byte character that never comes
	w.flush()
	if got := raw.String(); got != `x\xe6` {
		t.Fatalf("unfinished rune: %q", got)
	}
	if terminal(w) != &raw {
		t.Fatal("terminal() does not unwrap a safeWriter")
	}
}

func TestSafeWriterKeepsJSONValid(t *testing.T) {
	var raw bytes.Buffer
	v := map[string]any{"path": "/srv/" + evil, "n": 1}
	if err := writeSchemaJSON(newSafeWriter(&raw), v); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(raw.Bytes(), &back); err != nil || back["path"] != v["path"] || !progress.Safe(raw.String()) {
		t.Fatalf("JSON through the safe writer: %v\n%q", err, raw.String())
	}
}

func TestTablesQuoteAndEscapeNames(t *testing.T) {
	rows := tableRows([]api.InitTable{{Schema: "we.ird", Table: "t"}, {Schema: "we", Table: "ird.t"}, {Schema: "public", Table: evil}})
	if rows[0][0] != `"we.ird".t` || rows[1][0] != `we."ird.t"` || rows[2][0] != `public."`+progress.Escape(evil)+`"` {
		t.Fatalf("names: %q %q %q", rows[0][0], rows[1][0], rows[2][0])
	}
	var out bytes.Buffer
	path := "/srv/" + evil
	if err := printSnapshots(&out, []api.SnapshotInfo{{Path: path}}); err != nil {
		t.Fatal(err)
	}
	if !progress.Safe(out.String()) || !strings.Contains(out.String(), progress.Escape(path)) {
		t.Fatalf("snapshot list: %q", out.String())
	}
}
