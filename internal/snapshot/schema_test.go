package snapshot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadSchemaVerifiesSizeAndChecksum(t *testing.T) {
	dir := t.TempDir()
	w, err := CreateFile(dir, SchemaFileName, "none")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("PGDMP archive bytes")); err != nil {
		t.Fatal(err)
	}
	res, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !IsSnapshotFile(SchemaFileName) || !IsSnapshotFile(SchemaFileName+".partial") {
		t.Fatal("the schema archive is not recognized as a snapshot file")
	}
	s := &Schema{File: SchemaFileName, Bytes: res.FileBytes, SHA256: res.SHA256}
	d, err := (*Root)(nil).OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b, err := d.ReadSchema(s)
	if err != nil || string(b) != "PGDMP archive bytes" {
		t.Fatalf("read schema: %q, %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(dir, SchemaFileName), []byte("PGDMP archive bytez"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadSchema(s); err == nil || !strings.Contains(err.Error(), "failed verification") {
		t.Fatalf("tampered schema archive: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, SchemaFileName), []byte("PGDMP archive bytes, and more"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadSchema(s); err == nil {
		t.Fatal("a longer schema archive was accepted")
	}
}
