package snapshot

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestBeneathIsLexicalAndStrict(t *testing.T) {
	ok := map[[2]string]string{
		{"/srv/snap", "/srv/snap/a"}:   "a",
		{"/srv/snap", "/srv/snap/a/b"}: "a/b",
		{"/", "/a"}:                    "a",
		{"", "/tmp/x"}:                 "tmp/x",
	}
	for in, want := range ok {
		if got, err := Beneath(in[0], in[1]); err != nil || got != want {
			t.Errorf("Beneath(%q, %q) = %q, %v; want %q", in[0], in[1], got, err, want)
		}
	}
	for _, in := range [][2]string{
		{"/srv/snap", "/srv/snap"}, {"/srv/snap", "/srv/snapshots/a"}, {"/srv/snap", "/srv/snap/../etc"},
		{"/srv/snap", "/srv/snap/a/"}, {"/srv/snap", "srv/snap/a"}, {"/srv/snap", "/etc"}, {"", "/"}, {"", "relative"},
		{"/srv/snap", "/srv/snap/./a"}, {"/srv/snap", "/srv/snap//a"},
	} {
		if got, err := Beneath(in[0], in[1]); err == nil {
			t.Errorf("Beneath(%q, %q) accepted as %q", in[0], in[1], got)
		}
	}
}

// bothResolvers runs f with openat2 and with the per-component openat fallback.
func bothResolvers(t *testing.T, f func(t *testing.T)) {
	t.Run("openat2", f)
	t.Run("openat", func(t *testing.T) {
		noOpenat2.Store(true)
		defer noOpenat2.Store(false)
		f(t)
	})
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func mustRoot(t *testing.T, path string) *Root {
	t.Helper()
	r, err := OpenRoot(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestCreateDirMakesDirectories0700AndFiles0600(t *testing.T) {
	bothResolvers(t, func(t *testing.T) {
		base := t.TempDir()
		r := mustRoot(t, base)
		dir := filepath.Join(base, "team", "snap1")
		old := syscall.Umask(0)
		defer syscall.Umask(old)
		d, err := r.CreateDir(dir, "snap_1")
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		w, err := d.CreateFile("0001_public_t.copy", "none")
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("1\tx\n"))
		res, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, generatingName)); err != nil {
			t.Fatalf("no generating marker while generating: %v", err)
		}
		m := validManifest()
		m.Tables[0].File, m.Tables[0].SHA256, m.Tables[0].RawBytes, m.Tables[0].FileBytes = "0001_public_t.copy", res.SHA256, res.RawBytes, res.FileBytes
		if err := d.WriteManifest(m); err != nil {
			t.Fatal(err)
		}
		for path, want := range map[string]os.FileMode{
			filepath.Join(base, "team"): 0o700, dir: 0o700,
			filepath.Join(dir, "0001_public_t.copy"): 0o600, filepath.Join(dir, ManifestName): 0o600,
		} {
			if got := mode(t, path); got != want {
				t.Errorf("%s: mode %o, want %o", path, got, want)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, generatingName)); !os.IsNotExist(err) {
			t.Fatalf("generating marker left after the manifest: %v", err)
		}
		got, err := d.ReadManifest()
		if err != nil || got.SnapshotID != "snap_1" {
			t.Fatalf("read back: %v %v", got, err)
		}
	})
}

func TestCreateDirRefusesADirectoryItDidNotCreate(t *testing.T) {
	bothResolvers(t, func(t *testing.T) {
		base := t.TempDir()
		r := mustRoot(t, base)
		existing := filepath.Join(base, "existing")
		os.Mkdir(existing, 0o700)
		if _, err := r.CreateDir(existing, "snap_1"); err == nil || !strings.Contains(err.Error(), "not created by this snapshot") {
			t.Fatalf("existing directory accepted: %v", err)
		}
		// Another snapshot's directory (the manifest written, the marker gone) is never reused.
		other := filepath.Join(base, "other")
		d, err := r.CreateDir(other, "snap_other")
		if err != nil {
			t.Fatal(err)
		}
		if err := d.WriteManifest(validManifest()); err != nil {
			t.Fatal(err)
		}
		d.Close()
		before, _ := os.ReadFile(filepath.Join(other, ManifestName))
		if _, err := r.CreateDir(other, "snap_2"); err == nil || !strings.Contains(err.Error(), "holds another snapshot") {
			t.Fatalf("another snapshot's directory accepted: %v", err)
		}
		if after, _ := os.ReadFile(filepath.Join(other, ManifestName)); !bytes.Equal(before, after) {
			t.Fatal("the other snapshot's manifest changed")
		}
		// A retried attempt of the same snapshot gets its own directory back, and may clear it.
		mine := filepath.Join(base, "mine")
		d, err = r.CreateDir(mine, "snap_3")
		if err != nil {
			t.Fatal(err)
		}
		w, _ := d.CreateFile("0001_a_b.copy", "none")
		w.Write([]byte("x"))
		w.Close()
		d.Close()
		if _, err := r.CreateDir(mine, "snap_4"); err == nil {
			t.Fatal("a generation of another snapshot took over an unfinished one's directory")
		}
		d, err = r.CreateDir(mine, "snap_3")
		if err != nil {
			t.Fatalf("retry refused its own directory: %v", err)
		}
		removed, err := d.Clear()
		d.Close()
		if err != nil || len(removed) != 1 || removed[0] != "0001_a_b.copy" {
			t.Fatalf("Clear: %v %v", removed, err)
		}
		// A directory open to others is not taken for one of ours.
		os.Chmod(mine, 0o755)
		if _, err := r.CreateDir(mine, "snap_3"); err == nil {
			t.Fatal("a directory open to others was reused")
		}
	})
}

func TestClearRefusesForeignEntries(t *testing.T) {
	base := t.TempDir()
	d, err := mustRoot(t, base).CreateDir(filepath.Join(base, "s"), "snap_1")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	os.WriteFile(filepath.Join(base, "s", "notes.txt"), []byte("mine"), 0o600)
	if _, err := d.Clear(); err == nil || !strings.Contains(err.Error(), "notes.txt") {
		t.Fatalf("foreign file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(base, "s", "notes.txt")); err != nil {
		t.Fatal("foreign file removed")
	}
}

func TestSymlinksAreNeverFollowed(t *testing.T) {
	bothResolvers(t, func(t *testing.T) {
		base, outside := t.TempDir(), t.TempDir()
		r := mustRoot(t, base)
		secret := filepath.Join(outside, "secret")
		os.WriteFile(secret, []byte("1\tsecret\n"), 0o600)
		noLeak := func(what string, err error) {
			t.Helper()
			if err == nil {
				t.Fatalf("%s: accepted", what)
			}
			if !strings.Contains(err.Error(), "symbolic link") || strings.Contains(err.Error(), outside) {
				t.Fatalf("%s: %v", what, err)
			}
		}

		// The snapshot directory itself, or a directory on the way to it, is a symlink.
		os.Symlink(outside, filepath.Join(base, "link"))
		_, err := r.CreateDir(filepath.Join(base, "link"), "snap_1")
		noLeak("directory symlink (generate)", err)
		_, err = r.OpenDir(filepath.Join(base, "link"))
		noLeak("directory symlink (apply)", err)
		_, err = r.CreateDir(filepath.Join(base, "link", "x"), "snap_1")
		noLeak("parent symlink", err)
		if _, err := os.Lstat(filepath.Join(outside, "x")); !os.IsNotExist(err) {
			t.Fatal("a directory was made through the symlink")
		}
		if n, err := r.RemoveDir(filepath.Join(base, "link")); n != 0 || err == nil {
			t.Fatalf("delete through a symlink: %d %v", n, err)
		}

		// A symlink planted where a table file (or its partial file) is about to be written.
		dir := filepath.Join(base, "snap")
		d, err := r.CreateDir(dir, "snap_1")
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		target := filepath.Join(outside, "planted")
		os.Symlink(target, filepath.Join(dir, "0001_a_b.copy.partial"))
		_, err = d.CreateFile("0001_a_b.copy", "none")
		noLeak("planted partial", err)
		os.Symlink(target, filepath.Join(dir, "0002_a_c.copy"))
		w, err := d.CreateFile("0002_a_c.copy", "none")
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("1\tx\n"))
		if _, err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(target); !os.IsNotExist(err) {
			t.Fatal("a file appeared at the symlink's target")
		}
		if st, _ := os.Lstat(filepath.Join(dir, "0002_a_c.copy")); !st.Mode().IsRegular() {
			t.Fatal("the planted symlink is still there")
		}
		os.Symlink(target, filepath.Join(dir, ManifestName+".tmp"))
		noLeak("planted manifest temp", d.WriteManifest(validManifest()))

		// Reading: a table file or the manifest that is a symlink.
		os.Remove(filepath.Join(dir, ManifestName+".tmp"))
		os.Symlink(secret, filepath.Join(dir, "0003_a_d.copy"))
		_, err = d.OpenTable(Table{File: "0003_a_d.copy", RawBytes: 100, FileBytes: 100}, "none")
		noLeak("table file symlink", err)
		os.Symlink(secret, filepath.Join(dir, ManifestName))
		_, err = d.ReadManifest()
		noLeak("manifest symlink", err)
	})
}

func TestAnOpenDirIsNotResolvedAgain(t *testing.T) {
	bothResolvers(t, func(t *testing.T) {
		base, outside := t.TempDir(), t.TempDir()
		r := mustRoot(t, base)
		dir := filepath.Join(base, "snap")
		os.Mkdir(dir, 0o700)
		os.WriteFile(filepath.Join(dir, "0001_a_b.copy"), []byte("1\tgood\n"), 0o600)
		os.WriteFile(filepath.Join(outside, "0001_a_b.copy"), []byte("1\tevil\n"), 0o600)
		d, err := r.OpenDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		// Swap the path for a symlink to a directory of the attacker's after it was opened.
		os.Rename(dir, dir+".moved")
		os.Symlink(outside, dir)
		f, err := d.OpenTable(Table{File: "0001_a_b.copy", RawBytes: 7, FileBytes: 7}, "none")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(f)
		f.Finish()
		if string(got) != "1\tgood\n" {
			t.Fatalf("read %q through the swapped path", got)
		}
	})
}

func TestOpenRefusesFIFOsAndHardLinks(t *testing.T) {
	base := t.TempDir()
	d, err := mustRoot(t, base).OpenDir(base)
	if err == nil {
		t.Fatal("the root itself opened as a snapshot directory")
	}
	dir := filepath.Join(base, "s")
	os.Mkdir(dir, 0o700)
	if d, err = mustRoot(t, base).OpenDir(dir); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := syscall.Mkfifo(filepath.Join(dir, "0001_a_b.copy"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.OpenTable(Table{File: "0001_a_b.copy"}, "none"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("fifo: %v", err)
	}
	os.WriteFile(filepath.Join(base, "elsewhere"), []byte("x"), 0o600)
	os.Link(filepath.Join(base, "elsewhere"), filepath.Join(dir, "0002_a_c.copy"))
	if _, err := d.OpenTable(Table{File: "0002_a_c.copy"}, "none"); err == nil || !strings.Contains(err.Error(), "hard links") {
		t.Fatalf("hard link: %v", err)
	}
}

func TestARootConfinesEveryDirectory(t *testing.T) {
	base, outside := t.TempDir(), t.TempDir()
	r := mustRoot(t, base)
	for _, dir := range []string{filepath.Join(outside, "x"), base, base + "x/y"} {
		if _, err := r.CreateDir(dir, "snap_1"); err == nil || !strings.Contains(err.Error(), "not beneath") && dir != base {
			t.Errorf("%s: %v", dir, err)
		}
		if _, err := r.OpenDir(dir); err == nil {
			t.Errorf("%s opened", dir)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "x")); !os.IsNotExist(err) {
		t.Fatal("a directory was made outside the root")
	}
	// A refused path outside the root reads the same whether it exists or not.
	os.Mkdir(filepath.Join(outside, "exists"), 0o700)
	_, e1 := r.OpenDir(filepath.Join(outside, "exists"))
	_, e2 := r.OpenDir(filepath.Join(outside, "missing"))
	if strings.ReplaceAll(e1.Error(), "exists", "X") != strings.ReplaceAll(e2.Error(), "missing", "X") {
		t.Fatalf("errors differ: %q, %q", e1, e2)
	}
}

func TestDecompressionIsCappedAtRawBytes(t *testing.T) {
	for _, kind := range Compressions {
		dir := t.TempDir()
		name := FileName(1, "public", "t", kind)
		w, _ := CreateFile(dir, name, kind)
		data := bytes.Repeat([]byte("0\tzero\n"), 100000)
		w.Write(data)
		res, _ := w.Close()
		d, err := (*Root)(nil).OpenDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		tb := Table{File: name, RawBytes: res.RawBytes, FileBytes: res.FileBytes}
		r, _ := d.OpenTable(tb, kind)
		got, err := io.ReadAll(r)
		if _, sum, ferr := r.Finish(); err != nil || ferr != nil || sum != res.SHA256 || len(got) != len(data) {
			t.Fatalf("%s: exact cap refused: %v %v", kind, err, ferr)
		}
		tb.RawBytes = 1000 // the manifest claims far less than the file inflates to
		r, _ = d.OpenTable(tb, kind)
		got, err = io.ReadAll(r)
		if err == nil || int64(len(got)) > tb.RawBytes || !strings.Contains(err.Error(), "raw_bytes") {
			t.Fatalf("%s: read %d bytes past a cap of %d: %v", kind, len(got), tb.RawBytes, err)
		}
		if _, _, ferr := r.Finish(); ferr == nil || !strings.Contains(ferr.Error(), "raw_bytes") {
			t.Fatalf("%s: Finish: %v", kind, ferr)
		}
		d.Close()
	}
}

func TestRemoveDirRemovesOnlySnapshotFiles(t *testing.T) {
	base := t.TempDir()
	r := mustRoot(t, base)
	dir := filepath.Join(base, "s")
	d, _ := r.CreateDir(dir, "snap_1")
	w, _ := d.CreateFile("0001_a_b.copy", "none")
	w.Close()
	d.Close()
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o600)
	if n, err := r.RemoveDir(dir); err != nil || n != 2 { // the table file and the marker
		t.Fatalf("RemoveDir: %d %v", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Fatal("a foreign file was removed")
	}
	os.Remove(filepath.Join(dir, "notes.txt"))
	if _, err := r.RemoveDir(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("empty directory kept")
	}
	if n, err := r.RemoveDir(dir); n != 0 || err != nil {
		t.Fatalf("gone directory: %d %v", n, err)
	}
}
