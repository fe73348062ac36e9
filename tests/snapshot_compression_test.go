package tests

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/steepdb/steep_repl/tests/harness"
)

func TestSnapshotEachCompressionRoundTrips(t *testing.T) {
	t.Parallel()
	p := setupSnapPair(t)
	for _, c := range []string{"none", "gzip", "lz4", "zstd"} {
		dir := filepath.Join(filepath.Dir(p.dir), "snap_"+c)
		generateSnapshot(t, p.a, dir, fmt.Sprintf(`{"compression": %q, "parallel": 2}`, c))
		m := readManifest(t, dir)
		var raw, file int64
		for _, tb := range m.Tables {
			raw, file = raw+tb.RawBytes, file+tb.FileBytes
		}
		if m.Compression != c || (c == "none") != (raw == file) || file > raw {
			t.Fatalf("%s: manifest says compression %s, %d raw bytes in %d file bytes", c, m.Compression, raw, file)
		}
		applySnapshot(t, p.b, dir, `{"parallel": 2}`, "succeeded")
		harness.AssertEqual(t, p.a, p.b, "")
		t.Logf("%s: %d raw bytes -> %d (%.2fx)", c, raw, file, float64(raw)/float64(file))
		emptyPublicSchema(t, p.b)
	}
}
