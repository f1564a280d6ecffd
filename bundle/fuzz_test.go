package bundle_test

import (
	"errors"
	"os"
	"testing"

	"github.com/iac-ci/iac-ci/bundle"
)

// FuzzUnpack feeds Unpack mutated bundles. Whatever the input, Unpack must not panic, must write
// nothing outside its destination, must leave no symlink pointing out of it, and must report
// every refusal as an *UnsafeError.
func FuzzUnpack(f *testing.F) {
	code := f.TempDir()
	writeCode(f, code)
	exec, stripped, err := bundle.Build(testManifest(), []byte(`{"sops":{}}`), code)
	if err != nil {
		f.Fatal(err)
	}
	bare, _, err := bundle.Build(testManifest(), nil, "")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(exec)
	f.Add(stripped)
	f.Add(bare)
	f.Add(zipOf(f, manifestEntry(f), file("code/../../etc/x", "owned")))
	f.Add(zipOf(f, manifestEntry(f), link("code/d", "."), link("code/l", "d/..")))
	f.Add(zipOf(f, manifestEntry(f), link("code/l", "sub"), file("code/l/x", "x")))

	lim := bundle.Limits{MaxFiles: 64, MaxTotalBytes: 1 << 20, MaxFileBytes: 1 << 20}
	// One destination for every input, emptied after each: making fresh folders costs more than
	// most inputs do, and the fuzzer re-runs inputs thousands of times while minimizing them.
	root, dest := setupDest(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, _, err := bundle.Unpack(data, dest, lim)
		var unsafe *bundle.UnsafeError
		if err != nil && !errors.As(err, &unsafe) {
			t.Errorf("Unpack: got %v, want nil or an *UnsafeError", err)
		}
		if err == nil {
			if verr := m.Validate(); verr != nil {
				t.Errorf("accepted a bundle with an invalid manifest: %v", verr)
			}
		}
		if held := checkContained(t, root, dest); held > lim.MaxTotalBytes {
			t.Errorf("wrote %d bytes, more than the limit of %d", held, lim.MaxTotalBytes)
		}
		if left, _ := os.ReadDir(dest); len(left) > 0 {
			if err := os.RemoveAll(dest); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(dest, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	})
}
