package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRenderConf(t *testing.T) {
	s := serverSettings(Options{Preload: true, Settings: map[string]string{"max_connections": "20", "x.y": "it's"}}, 5555, "/tmp/sr-1")
	conf := renderConf(s)
	for _, want := range []string{
		"port = '5555'\n",
		"unix_socket_directories = '/tmp/sr-1'\n",
		"shared_preload_libraries = 'steep_repl'\n",
		"max_connections = '20'\n",
		"x.y = 'it''s'\n",
		"log_line_prefix = '%m [%p] %b '\n",
		"wal_level = 'logical'\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("conf lacks %q:\n%s", want, conf)
		}
	}
	if _, ok := serverSettings(Options{}, 1, "/x")["shared_preload_libraries"]; ok {
		t.Error("Preload false still sets shared_preload_libraries")
	}
	if got := quoteConfValue("'already'"); got != "'already'" {
		t.Errorf("quoteConfValue kept quotes: got %s", got)
	}
	if got := quoteConfValue(`a\b`); got != `'a\\b'` {
		t.Errorf("quoteConfValue backslash: got %s", got)
	}
}

func TestLastLines(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 5, "a\nb\nc"},
		{"a\nb\nc\n", 0, ""},
		{"", 3, ""},
		{"only\n", 1, "only"},
	} {
		if got := lastLines(c.in, c.n); got != c.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

func TestStripChinook(t *testing.T) {
	in := "DROP DATABASE IF EXISTS chinook;\n\ncreate database chinook;\n\\c chinook;\n  \\set x 1\nCREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n"
	want := "\nCREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n"
	if got := stripChinook(in); got != want {
		t.Errorf("stripChinook:\ngot  %q\nwant %q", got, want)
	}
}

func TestNodeSuffix(t *testing.T) {
	if nodeSuffix(0) != "a" || nodeSuffix(1) != "b" || nodeSuffix(25) != "z" || nodeSuffix(26) != "26" {
		t.Errorf("nodeSuffix: %s %s %s %s", nodeSuffix(0), nodeSuffix(1), nodeSuffix(25), nodeSuffix(26))
	}
}

func TestCopyTreeKeepsSymlinks(t *testing.T) {
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "lib", "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "lib", "libx.so.1.2"), []byte("lib"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "lib", "sub", "data"), []byte("d"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("libx.so.1.2", filepath.Join(src, "lib", "libx.so")); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "copy")
	if err := copyTree(filepath.Join(src, "lib"), dst); err != nil {
		t.Fatal(err)
	}
	if link, err := os.Readlink(filepath.Join(dst, "libx.so")); err != nil || link != "libx.so.1.2" {
		t.Errorf("symlink not kept: %q, %v", link, err)
	}
	for path, want := range map[string]os.FileMode{
		"libx.so.1.2": 0o755,
		"sub/data":    0o644,
		"sub":         0o755,
	} {
		info, err := os.Stat(filepath.Join(dst, path))
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", path, got, want)
		}
	}
}
