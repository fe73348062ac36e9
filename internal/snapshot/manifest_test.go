package snapshot

import (
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
		"version":     func(m *Manifest) { m.FormatVersion = 2 },
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

func TestSafePathRefusesSymlinksOut(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	secret := filepath.Join(outside, "secret")
	os.WriteFile(secret, []byte("x"), 0o600)
	os.Symlink(secret, filepath.Join(dir, "0001_a_b.copy"))
	if _, err := SafePath(dir, "0001_a_b.copy"); err == nil || !strings.Contains(err.Error(), "out of the snapshot directory") {
		t.Fatalf("symlink out accepted: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "real"), []byte("x"), 0o600)
	os.Symlink("real", filepath.Join(dir, "0002_a_c.copy"))
	if _, err := SafePath(dir, "0002_a_c.copy"); err != nil {
		t.Fatalf("symlink inside refused: %v", err)
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

func TestPrepareDirRefusesForeignFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "0001_public_t.copy.zst"), []byte("old"), 0o600)
	os.WriteFile(filepath.Join(dir, ManifestName), []byte("{}"), 0o600)
	removed, err := PrepareDir(dir)
	if err != nil || len(removed) != 2 {
		t.Fatalf("PrepareDir: %v %v", removed, err)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600)
	if _, err := PrepareDir(dir); err == nil {
		t.Fatal("directory with a foreign file accepted")
	}
}
