package snapshot

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
)

// FileResult is what a finished table file holds.
type FileResult struct {
	RawBytes  int64  // bytes of COPY text before compression
	FileBytes int64  // bytes of the file
	SHA256    string // SHA-256 of the file's bytes, hex
}

// FileWriter writes one table file: COPY text in, compressed bytes out to NAME.partial, with
// the SHA-256 and size of the file computed on the way (no second read). Close syncs it and
// renames it to NAME; Abort removes it. The file is made 0600, O_EXCL, in an open Dir.
type FileWriter struct {
	d      *Dir
	ownDir bool // close d when done (CreateFile opened it)
	f      *os.File
	name   string
	buf    *bufio.Writer
	comp   io.WriteCloser
	sum    hash.Hash
	raw    int64
	out    *countWriter
	closed bool
}

// CreateFile starts writing table file name (validated) in dir, opened for this one file (for
// tools and tests; a job uses Dir.CreateFile on the directory it holds).
func CreateFile(dir, name, compression string) (*FileWriter, error) {
	d, err := (*Root)(nil).OpenDir(dir)
	if err != nil {
		return nil, err
	}
	w, err := d.CreateFile(name, compression)
	if err != nil {
		d.Close()
		return nil, err
	}
	w.ownDir = true
	return w, nil
}

// CreateFile starts writing table file name (validated) in d. A partial file an interrupted
// attempt left is replaced; anything but a regular file under that name is refused.
func (d *Dir) CreateFile(name, compression string) (*FileWriter, error) {
	if err := ValidateFileName(name); err != nil {
		return nil, err
	}
	partial := name + ".partial"
	if err := d.replaceStale(partial); err != nil {
		return nil, err
	}
	f, err := d.create(partial)
	if err != nil {
		return nil, err
	}
	w := &FileWriter{d: d, f: f, name: name, sum: sha256.New()}
	w.buf = bufio.NewWriterSize(f, 1<<20)
	w.out = &countWriter{w: io.MultiWriter(w.buf, w.sum)}
	if w.comp, err = NewCompressor(compression, w.out); err != nil {
		f.Close()
		d.remove(partial)
		return nil, err
	}
	return w, nil
}

// Write compresses p into the file.
func (w *FileWriter) Write(p []byte) (int, error) {
	n, err := w.comp.Write(p)
	w.raw += int64(n)
	if err != nil {
		return n, fmt.Errorf("write %s: %w", w.name, err)
	}
	return n, nil
}

// RawBytes is how many uncompressed bytes were written so far.
func (w *FileWriter) RawBytes() int64 { return w.raw }

// Close flushes, syncs and renames the file to its final name and returns its facts.
func (w *FileWriter) Close() (FileResult, error) {
	if w.closed {
		return FileResult{}, errors.New("file already closed")
	}
	w.closed = true
	err := w.comp.Close()
	if err == nil {
		err = w.buf.Flush()
	}
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = w.d.rename(w.name+".partial", w.name)
	}
	if err != nil {
		w.d.remove(w.name + ".partial")
		w.release()
		return FileResult{}, fmt.Errorf("finish %s: %w", w.name, unwrapErrno(err))
	}
	w.release()
	return FileResult{RawBytes: w.raw, FileBytes: w.out.n, SHA256: hex.EncodeToString(w.sum.Sum(nil))}, nil
}

// Abort closes and removes the partial file.
func (w *FileWriter) Abort() {
	if w.closed {
		return
	}
	w.closed = true
	w.comp.Close()
	w.f.Close()
	w.d.remove(w.name + ".partial")
	w.release()
}

func (w *FileWriter) release() {
	if w.ownDir {
		w.d.Close()
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// FileReader reads one table file back: the file's bytes go through SHA-256 on their way to
// the decompressor, and Finish drains whatever the decompressor left unread, so the hash is
// of the whole file whatever happened to the stream. Opened for a manifest's table, it reads
// at most the table's compressed_bytes+1 from the file and yields at most its raw_bytes of
// COPY text: a file that inflates beyond that is an error, not a disk-filling load.
type FileReader struct {
	f      *os.File
	d      *Dir // closed with the file (OpenFile opened it)
	name   string
	tee    *hashReader
	dec    io.ReadCloser
	raw    int64
	limit  int64 // raw bytes allowed; -1: no cap
	excess error // set once the decompressed stream went past limit
}

// OpenFile opens table file name in dir (for tools and tests; a job uses Dir.OpenTable on the
// directory it holds). No cap applies to what it decompresses.
func OpenFile(dir, name, compression string) (*FileReader, error) {
	d, err := (*Root)(nil).OpenDir(dir)
	if err != nil {
		return nil, err
	}
	r, err := d.openReader(name, compression, -1, -1)
	if err != nil {
		d.Close()
		return nil, err
	}
	r.d = d
	return r, nil
}

// OpenTable opens t's file in d, capped at t.RawBytes decompressed and t.FileBytes+1 read.
func (d *Dir) OpenTable(t Table, compression string) (*FileReader, error) {
	return d.openReader(t.File, compression, t.RawBytes, t.FileBytes)
}

func (d *Dir) openReader(name, compression string, rawLimit, fileLimit int64) (*FileReader, error) {
	if err := ValidateFileName(name); err != nil {
		return nil, err
	}
	f, err := d.open(name)
	if err != nil {
		return nil, err
	}
	r := &FileReader{f: f, name: name, limit: rawLimit, tee: &hashReader{r: f, h: sha256.New(), limit: fileLimit}}
	if r.dec, err = NewDecompressor(compression, bufio.NewReaderSize(r.tee, 1<<20)); err != nil {
		f.Close()
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	return r, nil
}

// Read returns decompressed COPY text.
func (r *FileReader) Read(p []byte) (int, error) {
	if r.excess != nil {
		return 0, r.excess
	}
	if r.limit >= 0 && int64(len(p)) > r.limit-r.raw+1 {
		p = p[:r.limit-r.raw+1] // one byte past the cap is enough to know
	}
	n, err := r.dec.Read(p)
	r.raw += int64(n)
	if r.limit >= 0 && r.raw > r.limit {
		n -= int(r.raw - r.limit)
		r.raw = r.limit
		r.excess = fmt.Errorf("file %s decompresses to more than the manifest's raw_bytes (%d): refused", r.name, r.limit)
		return n, r.excess
	}
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("read %s: %w", r.name, unwrapErrno(err))
	}
	return n, err
}

// RawBytes is how many decompressed bytes were read so far.
func (r *FileReader) RawBytes() int64 { return r.raw }

// FileBytes is how many bytes of the file went through the hash so far.
func (r *FileReader) FileBytes() int64 { return r.tee.n }

// Finish reads the rest of the file into the hash, closes it, and returns the file's size and
// SHA-256 (of at most compressed_bytes+1 bytes when opened for a table), or the error of a
// stream that decompressed past the cap.
func (r *FileReader) Finish() (int64, string, error) {
	_, err := io.Copy(io.Discard, r.tee)
	r.dec.Close()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	if r.d != nil {
		r.d.Close()
	}
	if r.excess != nil {
		return r.tee.n, "", r.excess
	}
	if err != nil {
		return r.tee.n, "", fmt.Errorf("read %s: %w", r.name, unwrapErrno(err))
	}
	return r.tee.n, hex.EncodeToString(r.tee.h.Sum(nil)), nil
}

// hashReader hashes and counts what it reads, and ends the stream after limit+1 bytes
// (limit < 0: no end), enough to show the file is longer than the manifest says.
type hashReader struct {
	r     io.Reader
	h     hash.Hash
	n     int64
	limit int64
}

func (h *hashReader) Read(p []byte) (int, error) {
	if h.limit >= 0 {
		if h.n > h.limit {
			return 0, io.EOF
		}
		if int64(len(p)) > h.limit-h.n+1 {
			p = p[:h.limit-h.n+1]
		}
	}
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}
