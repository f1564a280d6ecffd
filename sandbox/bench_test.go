package sandbox_test

import (
	"os"
	"os/exec"
	"testing"

	"github.com/iac-ci/iac-ci/sandbox"
)

// What a confined command costs over a plain `sh -c true`: mostly the start of this binary
// again as the command's init (in iac-ci, a binary of about 100 MB, its runtime's start-up).
func BenchmarkPlainCommand(b *testing.B) {
	for b.Loop() {
		if err := exec.Command("sh", "-c", "true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConfinedCommand(b *testing.B) {
	dir := b.TempDir()
	uid, gid := sandbox.Default.RunsAs()
	if err := os.Chown(dir, uid, gid); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		cmd := sandbox.Default.Command("true", dir, nil)
		if err := sandbox.Default.Start(cmd); err != nil {
			b.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSessionCommand(b *testing.B) {
	root := b.TempDir()
	dir := root + "/order-1"
	if err := os.Mkdir(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	if err := sandbox.Default.Prepare(dir, root); err != nil {
		b.Fatal(err)
	}
	ss, err := sandbox.Default.Open(root)
	if err != nil {
		b.Fatal(err)
	}
	defer ss.Close()
	out, err := os.Create(os.DevNull)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	for b.Loop() {
		r, err := ss.Run("true", dir, nil, out)
		if err != nil {
			b.Fatal(err)
		}
		if code, err := r.Wait(); err != nil || code != 0 {
			b.Fatal(code, err)
		}
	}
}
