package snapshot

import (
	"fmt"
	"io"
	"testing"
)

// BenchmarkCompressors measures each compression on COPY-like text (one core).
func BenchmarkCompressors(b *testing.B) {
	var data []byte
	for i := 0; len(data) < 32<<20; i++ {
		data = fmt.Appendf(data, "%d\t%d\t%x%x\t2026-01-01 00:%02d:%02d+00\n", i, i%100000, i*7919, i*104729, i/60%60, i%60)
	}
	for _, kind := range Compressions {
		b.Run(kind, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for i := 0; i < b.N; i++ {
				w, _ := NewCompressor(kind, io.Discard)
				for off := 0; off < len(data); off += 1 << 20 {
					w.Write(data[off:min(off+1<<20, len(data))])
				}
				w.Close()
			}
		})
	}
}
