package snapshot

import (
	"fmt"
	"io"
)

// ReadSchema reads the schema archive s names from d, whole, and verifies it against the
// manifest (size and SHA-256) before returning it: what pg_restore then reads is exactly the
// bytes that were checked, not the file again.
func (d *Dir) ReadSchema(s *Schema) ([]byte, error) {
	r, err := d.openReader(s.File, "none", s.Bytes, s.Bytes)
	if err != nil {
		return nil, fmt.Errorf("schema archive: %w", err)
	}
	b, rerr := io.ReadAll(r)
	size, sum, err := r.Finish()
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, fmt.Errorf("schema archive: %w", err)
	}
	if size != s.Bytes || sum != s.SHA256 || int64(len(b)) != s.Bytes {
		return nil, fmt.Errorf("schema archive %s failed verification (its size or SHA-256 is not the manifest's): refused", s.File)
	}
	return b, nil
}
