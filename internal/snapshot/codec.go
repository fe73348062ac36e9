package snapshot

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Compressions lists the supported compressions.
var Compressions = []string{"zstd", "lz4", "gzip", "none"}

// CompressionExt returns the file extension of a compression ("" for none).
func CompressionExt(kind string) (string, error) {
	switch kind {
	case "none":
		return "", nil
	case "gzip":
		return ".gz", nil
	case "lz4":
		return ".lz4", nil
	case "zstd":
		return ".zst", nil
	}
	return "", fmt.Errorf("unknown compression %q (want zstd, lz4, gzip or none)", kind)
}

// NewCompressor wraps w in the compression's writer, tuned for speed (the files cross a
// network or a disk once; COPY is the bottleneck to keep up with). Close flushes it but does
// not close w.
func NewCompressor(kind string, w io.Writer) (io.WriteCloser, error) {
	switch kind {
	case "none":
		return nopWriteCloser{w}, nil
	case "gzip":
		return gzip.NewWriterLevel(w, gzip.BestSpeed)
	case "lz4":
		zw := lz4.NewWriter(w)
		if err := zw.Apply(lz4.CompressionLevelOption(lz4.Fast), lz4.ConcurrencyOption(1)); err != nil {
			return nil, fmt.Errorf("lz4 writer: %w", err)
		}
		return zw, nil
	case "zstd":
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	}
	return nil, fmt.Errorf("unknown compression %q", kind)
}

// NewDecompressor wraps r in the compression's reader. Close releases it but does not close r.
func NewDecompressor(kind string, r io.Reader) (io.ReadCloser, error) {
	switch kind {
	case "none":
		return io.NopCloser(r), nil
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gzip reader: %w", err)
		}
		return zr, nil
	case "lz4":
		return io.NopCloser(lz4.NewReader(r)), nil
	case "zstd":
		// Concurrency 2: the next block is decoded while COPY consumes the current one.
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(2))
		if err != nil {
			return nil, fmt.Errorf("zstd reader: %w", err)
		}
		return zr.IOReadCloser(), nil
	}
	return nil, fmt.Errorf("unknown compression %q", kind)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
