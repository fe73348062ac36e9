package snapshot

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func validManifest() *Manifest {
	return &Manifest{
		FormatVersion: FormatVersion, SnapshotID: "snap_1", SourceNode: "node_a", LSN: "0/1A2B3C",
		Compression: "zstd", CopyFormat: CopyFormat, CreatedAt: time.Now(), CompletedAt: time.Now(),
		Schema: &Schema{File: SchemaFileName, Bytes: 100, SHA256: strings.Repeat("cd", 32), PgDumpVersion: "18.6"},
		Tables: []Table{{Schema: "public", Name: "t", File: "0001_public_t.copy.zst", Columns: []string{"id"},
			SHA256: strings.Repeat("ab", 32)}},
	}
}

func TestManifestValidateRefusesEscapingNames(t *testing.T) {
	for _, name := range []string{"../x", "/etc/passwd", "a/../../x", "sub/file", "..", "", "manifest.json", "a\x00b", `..\x`} {
		m := validManifest()
		m.Tables[0].File = name
		if err := m.Validate(); err == nil {
			t.Errorf("file name %q accepted", name)
		}
	}
	if err := validManifest().Validate(); err != nil {
		t.Fatalf("valid manifest refused: %v", err)
	}
}

func TestManifestValidateChecksVersionAndFields(t *testing.T) {
	cases := map[string]func(*Manifest){
		"version":     func(m *Manifest) { m.FormatVersion = 3 },
		"no schema":   func(m *Manifest) { m.Schema = nil },
		"schema name": func(m *Manifest) { m.Schema.File = "../schema.dump" },
		"schema sha":  func(m *Manifest) { m.Schema.SHA256 = "" },
		"schema size": func(m *Manifest) { m.Schema.Bytes = 0 },
		"schema file": func(m *Manifest) { m.Tables[0].File = SchemaFileName },
		"compression": func(m *Manifest) { m.Compression = "brotli" },
		"format":      func(m *Manifest) { m.CopyFormat = "binary" },
		"sha":         func(m *Manifest) { m.Tables[0].SHA256 = "xyz" },
		"lsn":         func(m *Manifest) { m.LSN = "" },
		"no tables":   func(m *Manifest) { m.Tables = nil },
		"dup file": func(m *Manifest) {
			m.Tables = append(m.Tables, m.Tables[0])
			m.Tables[1].Name = "u"
		},
	}
	for name, mutate := range cases {
		m := validManifest()
		mutate(m)
		if err := m.Validate(); err == nil {
			t.Errorf("%s: invalid manifest accepted", name)
		}
	}
}

func TestManifestWriteReadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	m := validManifest()
	if err := WriteManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ManifestName+".tmp")); !os.IsNotExist(err) {
		t.Fatalf("temp manifest left behind: %v", err)
	}
	got, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.SnapshotID != m.SnapshotID || got.Tables[0].File != m.Tables[0].File || got.LSN != m.LSN {
		t.Fatalf("round trip changed the manifest: %+v", got)
	}
}

func TestFileNamesAreSafeAndRecognized(t *testing.T) {
	n := FileName(7, "my schema", "../weird/table", "lz4")
	if err := ValidateFileName(n); err != nil || !IsSnapshotFile(n) || !IsSnapshotFile(n+".partial") {
		t.Fatalf("FileName gave %q (valid: %v)", n, err)
	}
	if IsSnapshotFile("notes.txt") {
		t.Fatal("foreign file recognized as a snapshot file")
	}
}

func TestManifestReadRefusesASymlinkAndSaysNothingOfItsTarget(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	b, _ := json.Marshal(validManifest())
	os.WriteFile(filepath.Join(outside, "m.json"), b, 0o600)
	os.Symlink(filepath.Join(outside, "m.json"), filepath.Join(dir, ManifestName))
	_, err := ReadManifest(dir)
	if err == nil || !strings.Contains(err.Error(), "symbolic link") || strings.Contains(err.Error(), outside) {
		t.Fatalf("manifest symlink: %v", err)
	}
}

// manifestSeeds are the fuzz seeds: a valid manifest, and the shapes Validate must refuse.
func manifestSeeds() [][]byte {
	valid, _ := json.Marshal(validManifest())
	m := validManifest()
	m.Tables = append(m.Tables, Table{Schema: "s", Name: "u", File: "0002_s_u.copy.zst", Columns: []string{"a", "b"},
		Rows: 3, RawBytes: 30, FileBytes: 20, SHA256: strings.Repeat("0f", 32)})
	m.Sequences = []Sequence{{Schema: "public", Name: "t_id_seq", LastValue: 7, IsCalled: true}}
	two, _ := json.Marshal(m)
	seeds := [][]byte{valid, two, []byte(`{}`), []byte(`null`), []byte(`[]`), []byte(`{"format_version": 1, "tables": null}`)}
	for _, bad := range []string{"../x", "/etc/passwd", "a/b", "manifest.json", "generating.id", "..", "a\u0000b"} {
		seeds = append(seeds, []byte(strings.Replace(string(valid), "0001_public_t.copy.zst", bad, 1)))
	}
	seeds = append(seeds, []byte(strings.Replace(string(valid), `"raw_bytes":0`, `"raw_bytes":-1`, 1)))
	return seeds
}

// FuzzParseManifest: whatever the bytes, ParseManifest does not panic, and a manifest it
// accepts names only plain files inside the directory, holds well-formed checksums and counts,
// and survives a round trip through JSON unchanged. Plain `go test` runs the seeds;
// `go test -fuzz FuzzParseManifest ./internal/snapshot/` explores.
func FuzzParseManifest(f *testing.F) {
	for _, s := range manifestSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, tb := range m.Tables {
			if err := ValidateFileName(tb.File); err != nil || !filepath.IsLocal(tb.File) || strings.ContainsAny(tb.File, "/\\\x00") ||
				filepath.Base(tb.File) != tb.File || tb.File == ManifestName || tb.File == generatingName {
				t.Fatalf("accepted file name %q", tb.File)
			}
			if seen[tb.File] {
				t.Fatalf("accepted file %q twice", tb.File)
			}
			seen[tb.File] = true
			if len(tb.SHA256) != 64 || tb.Rows < 0 || tb.RawBytes < 0 || tb.FileBytes < 0 {
				t.Fatalf("accepted table %+v", tb)
			}
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("accepted manifest does not encode: %v", err)
		}
		m2, err := ParseManifest(again)
		if err != nil {
			t.Fatalf("accepted manifest refused after a round trip: %v", err)
		}
		if third, _ := json.Marshal(m2); string(third) != string(again) {
			t.Fatalf("round trip changed the manifest:\n%s\n%s", again, third)
		}
	})
}

func TestQualifiedNamesOfTablesWithDotsDiffer(t *testing.T) {
	a, b := Table{Schema: "we.ird", Name: "t"}, Table{Schema: "we", Name: "ird.t"}
	if a.QualifiedName() == b.QualifiedName() {
		t.Fatalf("%q and %q print the same", a.QualifiedName(), b.QualifiedName())
	}
	if got := (Table{Schema: "public", Name: "album"}).QualifiedName(); got != "public.album" {
		t.Fatalf("plain names are quoted: %q", got)
	}
}

func TestAManifestWithAbsurdSizesSaysSo(t *testing.T) {
	m := validManifest()
	m.Tables[0].RawBytes = 1 << 62
	err := m.Validate()
	if err == nil || !strings.Contains(err.Error(), "raw_bytes 4611686018427387904 is beyond") {
		t.Fatalf("Validate: %v", err)
	}
}

func TestManifestVersion1IsRefusedSayingWhy(t *testing.T) {
	m := validManifest()
	m.FormatVersion = 1
	err := m.Validate()
	if err == nil || !strings.Contains(err.Error(), "format version 1") || !strings.Contains(err.Error(), "generate the snapshot again") {
		t.Fatalf("version 1: %v", err)
	}
}
