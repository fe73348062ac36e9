package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// serverUser is the OS user that runs the servers when the tests run as root.
const serverUser = "postgres"

// toolchain is the PostgreSQL installation the harness runs and the OS
// identity it runs it as.
type toolchain struct {
	home string              // directory holding bin, lib and share
	cred *syscall.Credential // nil: run as the current user
}

var (
	toolchainOnce sync.Once
	toolchainVal  *toolchain
	toolchainErr  error
)

// getToolchain resolves the installation and the server user once per process.
func getToolchain() (*toolchain, error) {
	toolchainOnce.Do(func() { toolchainVal, toolchainErr = loadToolchain() })
	return toolchainVal, toolchainErr
}

func loadToolchain() (*toolchain, error) {
	home, err := pgHome()
	if err != nil {
		return nil, err
	}
	tc := &toolchain{home: home}
	if os.Geteuid() != 0 {
		return tc, nil
	}
	if tc.cred, err = lookupServerUser(); err != nil {
		return nil, err
	}
	if tc.canRun() == nil {
		return tc, nil
	}
	// The server user cannot reach the installation (e.g. the repository lives
	// under /root): run a world-readable copy instead.
	copyDir, err := copyHome(home)
	if err != nil {
		return nil, fmt.Errorf("copy %s for user %s: %w", home, serverUser, err)
	}
	tc.home = copyDir
	if err := tc.canRun(); err != nil {
		return nil, fmt.Errorf("user %s cannot run %s: %w", serverUser, copyDir, err)
	}
	return tc, nil
}

// canRun checks that the server user can execute postgres with its libraries.
func (tc *toolchain) canRun() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := tc.command(ctx, "postgres", "--version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("postgres --version: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// command prepares a binary of the installation to run as the server user, in
// the root directory, with a C locale and no PG* variables from the caller.
func (tc *toolchain) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(tc.home, "bin", name), args...)
	cmd.Dir = "/"
	env := []string{"LC_ALL=C", "LANG=C"}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = env
	if tc.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: tc.cred}
	}
	return cmd
}

// chown gives path to the server user; a no-op when not running as root.
func (tc *toolchain) chown(path string) error {
	if tc.cred == nil {
		return nil
	}
	if err := os.Chown(path, int(tc.cred.Uid), int(tc.cred.Gid)); err != nil {
		return fmt.Errorf("chown %s to %s: %w", path, serverUser, err)
	}
	return nil
}

// repoRoot walks up from the working directory to the folder holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find repository root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// pgHome finds the PostgreSQL installation: STEEP_PG_HOME or <repo>/.cache/pg18.
func pgHome() (string, error) {
	home := os.Getenv("STEEP_PG_HOME")
	if home == "" {
		root, err := repoRoot()
		if err != nil {
			return "", err
		}
		home = filepath.Join(root, ".cache", "pg18")
	}
	home, err := filepath.Abs(home)
	if err != nil {
		return "", fmt.Errorf("resolve PostgreSQL home %s: %w", home, err)
	}
	for _, bin := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(home, "bin", bin)); err != nil {
			return "", fmt.Errorf("PostgreSQL 18 not found in %s (missing bin/%s): run make setup", home, bin)
		}
	}
	return home, nil
}

// lookupServerUser returns the credential of the server user, creating the
// user when it does not exist.
func lookupServerUser() (*syscall.Credential, error) {
	u, err := user.Lookup(serverUser)
	if errors.As(err, new(user.UnknownUserError)) {
		out, aerr := exec.Command("useradd", "--system", "--no-create-home",
			"--shell", "/usr/sbin/nologin", serverUser).CombinedOutput()
		if aerr != nil {
			return nil, fmt.Errorf("create OS user %s: %w: %s", serverUser, aerr, strings.TrimSpace(string(out)))
		}
		u, err = user.Lookup(serverUser)
	}
	if err != nil {
		return nil, fmt.Errorf("look up OS user %s: %w", serverUser, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parse uid of %s: %w", serverUser, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parse gid of %s: %w", serverUser, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// copyPrefix names the per-process copies of the installation:
// /tmp/sr-pghome-<pid>-XXXX.
const copyPrefix = "sr-pghome-"

// copyHome copies bin, lib, share and lib-client (the client programs' libpq,
// found by rpath from bin) of home into a new world-readable directory, after
// removing copies left behind by processes that have exited.
func copyHome(home string) (string, error) {
	removeStaleCopies()
	dst, err := os.MkdirTemp("/tmp", fmt.Sprintf("%s%d-", copyPrefix, os.Getpid()))
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dst, 0o755); err != nil {
		return "", err
	}
	for _, sub := range []string{"bin", "lib", "share", "lib-client"} {
		if _, err := os.Stat(filepath.Join(home, sub)); sub == "lib-client" && errors.Is(err, fs.ErrNotExist) {
			continue // an installation without make setup's client programs
		}
		if err := copyTree(filepath.Join(home, sub), filepath.Join(dst, sub)); err != nil {
			os.RemoveAll(dst)
			return "", err
		}
	}
	return dst, nil
}

// removeStaleCopies deletes installation copies whose process is gone.
func removeStaleCopies() {
	matches, _ := filepath.Glob(filepath.Join("/tmp", copyPrefix+"*"))
	for _, m := range matches {
		pidText, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(m), copyPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(m)
		}
	}
}

// copyTree copies src to dst, keeping symlinks as symlinks and making every
// file and directory readable (and executables executable) by everyone.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.IsDir():
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			return os.Chmod(target, 0o755)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			mode := info.Mode().Perm() | 0o444
			if mode&0o100 != 0 {
				mode |= 0o111
			}
			return copyFile(path, target, mode)
		default:
			return nil // sockets, devices: nothing an installation needs
		}
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode) // the umask may have masked OpenFile's mode
}
