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
