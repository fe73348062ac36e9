package snapshot

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func copyText(rows int) []byte {
	var b bytes.Buffer
	for i := 0; i < rows; i++ {
		fmt.Fprintf(&b, "%d\tname %d\t%x\n", i, i%97, sha256.Sum256([]byte(fmt.Sprint(i))))
	}
	return b.Bytes()
}

func TestEachCompressionRoundTripsWithTheFileHash(t *testing.T) {
	data := copyText(20000)
	for _, kind := range Compressions {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			name := FileName(1, "public", "t", kind)
			w, err := CreateFile(dir, name, kind)
			if err != nil {
				t.Fatal(err)
			}
			for off := 0; off < len(data); off += 7777 {
				end := min(off+7777, len(data))
				if _, err := w.Write(data[off:end]); err != nil {
					t.Fatal(err)
				}
			}
			res, err := w.Close()
			if err != nil {
				t.Fatal(err)
			}
			onDisk, _ := os.ReadFile(filepath.Join(dir, name))
			sum := sha256.Sum256(onDisk)
			if res.SHA256 != hex.EncodeToString(sum[:]) || res.FileBytes != int64(len(onDisk)) || res.RawBytes != int64(len(data)) {
				t.Fatalf("result %+v does not describe the file (%d bytes)", res, len(onDisk))
			}
			if _, err := os.Stat(filepath.Join(dir, name+".partial")); !os.IsNotExist(err) {
				t.Fatal("partial file left")
			}
			r, err := OpenFile(dir, name, kind)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			n, sha, err := r.Finish()
			if err != nil || sha != res.SHA256 || n != res.FileBytes || !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes, hash %s (want %s), err %v, equal %v", n, sha, res.SHA256, err, bytes.Equal(got, data))
			}
			if kind != "none" && res.FileBytes >= res.RawBytes {
				t.Errorf("%s did not compress: %d -> %d", kind, res.RawBytes, res.FileBytes)
			}
		})
	}
}

func TestAFlippedByteChangesTheHashEvenWhenDecompressionStops(t *testing.T) {
	for _, kind := range Compressions {
		dir := t.TempDir()
		name := FileName(1, "public", "t", kind)
		w, _ := CreateFile(dir, name, kind)
		w.Write(copyText(5000))
		res, _ := w.Close()
		path := filepath.Join(dir, name)
		b, _ := os.ReadFile(path)
		b[len(b)/2] ^= 0x01
		os.WriteFile(path, b, 0o644)
		r, err := OpenFile(dir, name, kind)
		if err != nil {
			continue // a header the reader refuses is a refusal too
		}
		io.Copy(io.Discard, r) // may fail midway: the hash must still cover the file
		_, sha, err := r.Finish()
		if err != nil || sha == res.SHA256 {
			t.Errorf("%s: flipped byte not detected by the hash (err %v)", kind, err)
		}
	}
}

func TestAbortRemovesThePartialFile(t *testing.T) {
	dir := t.TempDir()
	w, _ := CreateFile(dir, "0001_a_b.copy", "zstd")
	w.Write([]byte("1\tx\n"))
	w.Abort()
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left %v", entries)
	}
}

func TestAsyncWriterDeliversEverythingInOrderAndReportsErrors(t *testing.T) {
	var out bytes.Buffer
	a := NewAsyncWriter(&out, 1000, 2)
	want := copyText(3000)
	for off := 0; off < len(want); off += 333 {
		a.Write(want[off:min(off+333, len(want))])
	}
	if err := a.Close(); err != nil || !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("async writer: err %v, equal %v", err, bytes.Equal(out.Bytes(), want))
	}
	bad := NewAsyncWriter(failWriter{}, 10, 1)
	for i := 0; i < 10; i++ {
		bad.Write(make([]byte, 10))
	}
	if err := bad.Close(); err == nil {
		t.Fatal("the consumer's error was lost")
	}
}

type failWriter struct{}

func (failWriter) Write(p []byte) (int, error) { return 0, io.ErrShortWrite }
