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
	"path/filepath"
)

// FileResult is what a finished table file holds.
type FileResult struct {
	RawBytes  int64  // bytes of COPY text before compression
	FileBytes int64  // bytes of the file
	SHA256    string // SHA-256 of the file's bytes, hex
}

// FileWriter writes one table file: COPY text in, compressed bytes out to NAME.partial, with
// the SHA-256 and size of the file computed on the way (no second read). Close syncs it and
// renames it to NAME; Abort removes it.
type FileWriter struct {
	f      *os.File
	dir    string
	name   string
	buf    *bufio.Writer
	comp   io.WriteCloser
	sum    hash.Hash
	raw    int64
	out    *countWriter
	closed bool
}

// CreateFile starts writing table file name (validated) in dir.
func CreateFile(dir, name, compression string) (*FileWriter, error) {
	if err := ValidateFileName(name); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, name+".partial"), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	w := &FileWriter{f: f, dir: dir, name: name, sum: sha256.New()}
	w.buf = bufio.NewWriterSize(f, 1<<20)
	w.out = &countWriter{w: io.MultiWriter(w.buf, w.sum)}
	if w.comp, err = NewCompressor(compression, w.out); err != nil {
		f.Close()
		os.Remove(f.Name())
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
		err = os.Rename(w.f.Name(), filepath.Join(w.dir, w.name))
	}
	if err != nil {
		os.Remove(w.f.Name())
		return FileResult{}, fmt.Errorf("finish %s: %w", w.name, err)
	}
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
	os.Remove(w.f.Name())
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
// of the whole file whatever happened to the stream.
type FileReader struct {
	f    *os.File
	name string
	tee  *hashReader
	dec  io.ReadCloser
	raw  int64
}

// OpenFile opens table file name in dir after SafePath's checks.
func OpenFile(dir, name, compression string) (*FileReader, error) {
	path, err := SafePath(dir, name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	r := &FileReader{f: f, name: name, tee: &hashReader{r: f, h: sha256.New()}}
	if r.dec, err = NewDecompressor(compression, bufio.NewReaderSize(r.tee, 1<<20)); err != nil {
		f.Close()
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	return r, nil
}

// Read returns decompressed COPY text.
func (r *FileReader) Read(p []byte) (int, error) {
	n, err := r.dec.Read(p)
	r.raw += int64(n)
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("read %s: %w", r.name, err)
	}
	return n, err
}

// RawBytes is how many decompressed bytes were read so far.
func (r *FileReader) RawBytes() int64 { return r.raw }

// FileBytes is how many bytes of the file went through the hash so far.
func (r *FileReader) FileBytes() int64 { return r.tee.n }

// Finish reads the rest of the file into the hash, closes it, and returns the file's size and SHA-256.
func (r *FileReader) Finish() (int64, string, error) {
	_, err := io.Copy(io.Discard, r.tee)
	r.dec.Close()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return r.tee.n, "", fmt.Errorf("read %s: %w", r.name, err)
	}
	return r.tee.n, hex.EncodeToString(r.tee.h.Sum(nil)), nil
}

type hashReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}
