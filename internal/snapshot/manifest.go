package snapshot

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/steepdb/steep_repl/internal/progress"
)

// FormatVersion is the manifest format this code writes and the only one it reads. Version 2
// carries the schema as a pg_dump archive (Manifest.Schema); version 1 carried catalog-built
// DDL per table and is refused with a message saying so (see Validate).
const FormatVersion = 2

// SchemaFileName is the file holding the schema: `pg_dump --schema-only --format=custom`, taken
// inside the snapshot's exported snapshot.
const SchemaFileName = "schema.dump"

// maxSchemaBytes bounds the schema archive (it is read whole, verified, then restored).
const maxSchemaBytes = 256 << 20

// ManifestName is the manifest's file name inside a snapshot directory.
const ManifestName = "manifest.json"

// CopyFormat is the COPY format of the table files (see docs/snapshot.md for why text).
const CopyFormat = "text"

// Manifest describes a complete snapshot.
type Manifest struct {
	FormatVersion    int        `json:"format_version"`
	SnapshotID       string     `json:"snapshot_id"`
	SourceNode       string     `json:"source_node"`
	SourceDatabase   string     `json:"source_database"`
	ServerVersion    string     `json:"server_version"`
	ServerVersionNum int        `json:"server_version_num"`
	Encoding         string     `json:"encoding"`
	LSN              string     `json:"lsn"`
	SlotName         string     `json:"slot_name,omitempty"`
	Publication      string     `json:"publication,omitempty"`
	SlotExpiresAt    *time.Time `json:"slot_expires_at,omitempty"`
	CreatedAt        time.Time  `json:"created_at"`
	CompletedAt      time.Time  `json:"completed_at"`
	Compression      string     `json:"compression"`
	CopyFormat       string     `json:"copy_format"`
	Schemas          []string   `json:"schemas"`
	Schema           *Schema    `json:"schema"`
	Tables           []Table    `json:"tables"`
	Sequences        []Sequence `json:"sequences"`
	// MatViews are the materialized views of the dumped schemas that were populated at the
	// snapshot: a schema-only archive creates them WITH NO DATA, so apply refreshes them.
	MatViews []Relation `json:"matviews,omitempty"`
}

// Schema is the schema archive's entry: its file, size and SHA-256, and the pg_dump that wrote
// it (a pg_restore older than that cannot read it).
type Schema struct {
	File          string `json:"file"`
	Bytes         int64  `json:"bytes"`
	SHA256        string `json:"sha256"`
	PgDumpVersion string `json:"pg_dump_version"`
}

// Relation names a relation by schema and name.
type Relation struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
}

// QualifiedName is the relation quoted as format('%I.%I') quotes it.
func (r Relation) QualifiedName() string { return progress.Ident(r.Schema, r.Name) }

// Table is one table's entry: its file and what the file must hold.
type Table struct {
	Schema      string   `json:"schema"`
	Name        string   `json:"name"`
	File        string   `json:"file"`
	Columns     []string `json:"columns"`
	Rows        int64    `json:"rows"`
	RawBytes    int64    `json:"raw_bytes"`
	FileBytes   int64    `json:"compressed_bytes"`
	SHA256      string   `json:"sha256"`
	Fingerprint string   `json:"fingerprint"`
}

// Sequence is a sequence's state at the snapshot. DDL (empty for identity sequences) creates it
// when the tables exist on the target already and only the data is loaded; OwnedBy is empty
// for free ones. Into an empty target the schema archive creates every sequence.
type Sequence struct {
	Schema    string `json:"schema"`
	Name      string `json:"name"`
	LastValue int64  `json:"last_value"`
	IsCalled  bool   `json:"is_called"`
	DDL       string `json:"ddl,omitempty"`
	OwnedBy   string `json:"owned_by,omitempty"`
}

// QualifiedName is schema.name quoted as format('%I.%I') quotes it (and escaped for a terminal):
// unambiguous, so "we.ird".t and we."ird.t" are two names.
func (t Table) QualifiedName() string { return progress.Ident(t.Schema, t.Name) }

// Validate checks everything a manifest claims before any file is opened: the version, the
// ids, the compression, and that every file name is a plain name inside the directory.
func (m *Manifest) Validate() error {
	if m.FormatVersion == 1 {
		return errors.New("manifest format version 1 (written by steep-repl 1.0, the schema as catalog-built DDL) is no longer applied: " +
			"generate the snapshot again with this steep-repl, which carries the schema as a pg_dump archive (format version 2)")
	}
	if m.FormatVersion != FormatVersion {
		return fmt.Errorf("manifest format version %d is not supported (this steep-repl reads version %d)", m.FormatVersion, FormatVersion)
	}
	if m.SnapshotID == "" || m.LSN == "" || m.SourceNode == "" {
		return errors.New("manifest lacks the snapshot id, source node or LSN")
	}
	if _, err := CompressionExt(m.Compression); err != nil {
		return err
	}
	if m.CopyFormat != CopyFormat {
		return fmt.Errorf("manifest copy format %q is not supported (want %q)", m.CopyFormat, CopyFormat)
	}
	if len(m.Tables) == 0 {
		return errors.New("manifest lists no tables")
	}
	if m.Schema == nil {
		return errors.New("manifest has no schema archive")
	}
	if err := ValidateFileName(m.Schema.File); err != nil {
		return fmt.Errorf("schema archive: %w", err)
	}
	if b, err := hex.DecodeString(m.Schema.SHA256); err != nil || len(b) != 32 {
		return fmt.Errorf("schema archive: sha256 %q is not a SHA-256 in hex", m.Schema.SHA256)
	}
	if m.Schema.Bytes <= 0 || m.Schema.Bytes > maxSchemaBytes {
		return fmt.Errorf("schema archive: size %d is not between 1 and %d bytes", m.Schema.Bytes, int64(maxSchemaBytes))
	}
	files := map[string]string{m.Schema.File: "the schema archive"}
	names := map[[2]string]bool{}
	for _, t := range m.Tables {
		if err := ValidateFileName(t.File); err != nil {
			return fmt.Errorf("table %s: %w", t.QualifiedName(), err)
		}
		if other, dup := files[t.File]; dup {
			return fmt.Errorf("tables %s and %s name the same file %q", other, t.QualifiedName(), t.File)
		}
		files[t.File] = t.QualifiedName()
		if names[[2]string{t.Schema, t.Name}] || t.Schema == "" || t.Name == "" {
			return fmt.Errorf("table %q is listed twice or has no name", t.QualifiedName())
		}
		names[[2]string{t.Schema, t.Name}] = true
		if b, err := hex.DecodeString(t.SHA256); err != nil || len(b) != 32 {
			return fmt.Errorf("table %s: sha256 %q is not a SHA-256 in hex", t.QualifiedName(), t.SHA256)
		}
		if t.Rows < 0 || t.RawBytes < 0 || t.FileBytes < 0 || len(t.Columns) == 0 {
			return fmt.Errorf("table %s: negative counts or no columns", t.QualifiedName())
		}
		// Say what is wrong with an absurd size (not a checksum mismatch later), and keep every
		// total of the apply's progress far from overflowing.
		for what, n := range map[string]int64{"rows": t.Rows, "raw_bytes": t.RawBytes, "file_bytes": t.FileBytes} {
			if n > maxTableCount {
				return fmt.Errorf("table %s: %s %d is beyond %d: the manifest is damaged", t.QualifiedName(), what, n, int64(maxTableCount))
			}
		}
	}
	return nil
}

// maxTableCount bounds each row and byte count of a table (1 PiB): the sum over the most tables
// a manifest can list stays well inside an int64.
const maxTableCount = 1 << 50

// maxManifestBytes bounds what is read as a manifest (its DDL included, thousands of tables fit).
const maxManifestBytes = 64 << 20

// ParseManifest decodes and validates a manifest's bytes: the pure half of ReadManifest.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// ReadManifest reads and validates dir's manifest (for tools and tests; a job uses
// Dir.ReadManifest on the directory it holds).
func ReadManifest(dir string) (*Manifest, error) {
	d, err := (*Root)(nil).OpenDir(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.ReadManifest()
}

// ReadManifest reads and validates d's manifest, a regular file reached without a symlink.
func (d *Dir) ReadManifest() (*Manifest, error) {
	b, err := d.readSmall(ManifestName, maxManifestBytes)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	m, err := ParseManifest([]byte(b))
	if err != nil {
		return nil, fmt.Errorf("manifest of %s refused: %w", d.path, err)
	}
	return m, nil
}

// WriteManifest writes dir's manifest (for tools and tests; see Dir.WriteManifest).
func WriteManifest(dir string, m *Manifest) error {
	d, err := (*Root)(nil).OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.WriteManifest(m)
}

// WriteManifest writes d's manifest atomically — a temp file (0600, O_EXCL), fsync, rename,
// fsync of the directory — then removes the generating marker: the directory now says
// which snapshot it holds.
func (d *Dir) WriteManifest(m *Manifest) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("refusing to write an invalid manifest: %w", err)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	tmp := ManifestName + ".tmp"
	if err := d.writeSynced(tmp, append(b, '\n')); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := d.rename(tmp, ManifestName); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := d.remove(generatingName); err != nil {
		return err
	}
	return d.sync()
}
