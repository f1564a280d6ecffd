package bundle_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/bundle"
	"github.com/iac-ci/iac-ci/domain"
)

func testManifest() bundle.Manifest {
	return bundle.Manifest{
		RunID:       "20250101T000000Z-0123456789abcdef",
		TraceID:     "a1b2c3d4e5",
		FlowID:      "alice:a1b2c3d4e5-exec",
		OrderName:   "network",
		QueueID:     "network",
		OrderNum:    3,
		Target:      domain.TargetSSM,
		Cmds:        []string{"tofu init", "tofu plan"},
		Timeout:     600,
		EnvNames:    []string{"DB_PASSWORD", "REGION"},
		SecretNames: []string{"DB_PASSWORD"},
		SSMTargets:  &domain.SSMTargets{Tags: map[string]string{"role": "web"}},
		CreatedAt:   time.Date(2025, 1, 1, 12, 30, 0, 0, time.UTC),
	}
}

// writeCode lays out a small code folder: a plain file, an executable, an empty folder, and
// symlinks to a folder and to a file inside it.
func writeCode(t testing.TB, dir string) {
	t.Helper()
	files := []struct {
		name string
		mode fs.FileMode
		body string
	}{
		{"main.tf", 0o644, "resource \"null_resource\" \"x\" {}\n"},
		{"scripts/run.sh", 0o755, "#!/bin/sh\necho run\n"},
		{"modules/vpc/vpc.tf", 0o600, "# vpc\n"},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.body), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil { // the umask may have cleared bits
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"tools": "scripts", "modules/vpc/run": "../../scripts/run.sh"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBuildUnpackRoundTrip(t *testing.T) {
	t.Parallel()
	code := t.TempDir()
	writeCode(t, code)
	sealed := []byte(`{"data":"ENC[AES256_GCM,data:...]","sops":{}}`)

	exec, stripped, err := bundle.Build(testManifest(), sealed, code)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}

	dest := t.TempDir()
	m, gotSealed, err := bundle.Unpack(exec, dest, bundle.DefaultLimits)
	if err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	if !reflect.DeepEqual(m, testManifest()) {
		t.Errorf("manifest: got %+v, want %+v", m, testManifest())
	}
	if !bytes.Equal(gotSealed, sealed) {
		t.Errorf("sealed: got %q, want %q", gotSealed, sealed)
	}
	for name, wantMode := range map[string]fs.FileMode{"main.tf": 0o644, "scripts/run.sh": 0o755, "modules/vpc/vpc.tf": 0o600} {
		want, _ := os.ReadFile(filepath.Join(code, name))
		got, err := os.ReadFile(filepath.Join(dest, name))
		if err != nil {
			t.Errorf("read %s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
		info, _ := os.Stat(filepath.Join(dest, name))
		if info.Mode().Perm() != wantMode {
			t.Errorf("%s mode: got %v, want %v", name, info.Mode().Perm(), wantMode)
		}
	}
	if info, err := os.Stat(filepath.Join(dest, "empty")); err != nil || !info.IsDir() {
		t.Errorf("empty folder: got %v, %v, want a folder", info, err)
	}
	for link, want := range map[string]string{"tools": "scripts", "modules/vpc/run": "../../scripts/run.sh"} {
		got, err := os.Readlink(filepath.Join(dest, link))
		if err != nil || got != want {
			t.Errorf("symlink %s: got %q, %v, want %q", link, got, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dest, bundle.ManifestName)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("manifest.json was written to the working directory: %v", err)
	}

	// stripped.zip is exec.zip without the sealed environment.
	names := func(b []byte) []string {
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range zr.File {
			out = append(out, f.Name)
		}
		return out
	}
	var want []string
	for _, n := range names(exec) {
		if n != bundle.SealedName {
			want = append(want, n)
		}
	}
	if got := names(stripped); !reflect.DeepEqual(got, want) {
		t.Errorf("stripped entries: got %v, want %v", got, want)
	}
	if len(want) == len(names(exec)) {
		t.Fatalf("exec.zip has no %s: %v", bundle.SealedName, names(exec))
	}
	m2, sealed2, err := bundle.Unpack(stripped, t.TempDir(), bundle.DefaultLimits)
	if err != nil {
		t.Fatalf("Unpack stripped: %v", err)
	}
	if sealed2 != nil || m2.RunID != testManifest().RunID {
		t.Errorf("stripped: got sealed %q and run %q, want none and %q", sealed2, m2.RunID, testManifest().RunID)
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	t.Parallel()
	a, b := t.TempDir(), t.TempDir()
	writeCode(t, a)
	writeCode(t, b)
	// Different modification times must not change the bytes.
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(b, "main.tf"), old, old); err != nil {
		t.Fatal(err)
	}
	execA, strippedA, err := bundle.Build(testManifest(), []byte("sealed"), a)
	if err != nil {
		t.Fatal(err)
	}
	execB, strippedB, err := bundle.Build(testManifest(), []byte("sealed"), b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(execA, execB) || !bytes.Equal(strippedA, strippedB) {
		t.Fatalf("same input, different bytes: exec %d/%d, stripped %d/%d bytes", len(execA), len(execB), len(strippedA), len(strippedB))
	}

	zr, err := zip.NewReader(bytes.NewReader(execA), int64(len(execA)))
	if err != nil {
		t.Fatal(err)
	}
	var prev string
	for _, f := range zr.File {
		if f.Name < prev {
			t.Errorf("entries out of order: %q after %q", f.Name, prev)
		}
		prev = f.Name
		if !f.Modified.Equal(time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("%s: modified %v, want the fixed 1980-01-01", f.Name, f.Modified)
		}
	}
}

func TestBuildWithoutCode(t *testing.T) {
	t.Parallel()
	exec, _, err := bundle.Build(testManifest(), []byte("s"), "")
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(exec), int64(len(exec)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 2 {
		t.Errorf("entries: got %d, want 2 (manifest and sealed environment)", len(zr.File))
	}
	dest := t.TempDir()
	if _, _, err := bundle.Unpack(exec, dest, bundle.DefaultLimits); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dest); len(left) != 0 {
		t.Errorf("working directory: got %d entries, want none", len(left))
	}
}

func TestBuildRefusesSymlinksOut(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		links [][2]string // link, target
		bad   string      // the file the error must name
	}{
		{"parent", [][2]string{{"up", "../outside"}}, "up"},
		{"absolute", [][2]string{{"sub/passwd", "/etc/passwd"}}, "sub/passwd"},
		{"chain", [][2]string{{"d", "."}, {"l", "d/.."}}, "l"},
		{"deep chain", [][2]string{{"a/b/top", "../.."}, {"a/b/c", "top/.."}}, "a/b/c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code := t.TempDir()
			writeCode(t, code)
			for _, l := range tt.links {
				p := filepath.Join(code, l[0])
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(l[1], p); err != nil {
					t.Fatal(err)
				}
			}
			_, _, err := bundle.Build(testManifest(), nil, code)
			if err == nil {
				t.Fatal("Build: got no error, want one naming the symlink")
			}
			if !strings.Contains(err.Error(), `"`+tt.bad+`"`) {
				t.Errorf("error %q does not name %q", err, tt.bad)
			}
		})
	}
}

func TestBuildRefusesInvalidManifest(t *testing.T) {
	t.Parallel()
	m := testManifest()
	m.Cmds = nil
	if _, _, err := bundle.Build(m, nil, ""); err == nil || !strings.Contains(err.Error(), "Cmds") {
		t.Errorf("Build without commands: got %v, want an error about Cmds", err)
	}
	m = testManifest()
	m.SecretNames = []string{"NOT_IN_ENV"}
	if _, _, err := bundle.Build(m, nil, ""); err == nil || !strings.Contains(err.Error(), "NOT_IN_ENV") {
		t.Errorf("Build with a stray secret name: got %v, want an error naming it", err)
	}
}

// BenchmarkBuildAndUnpackWithoutCode is the bundle work of an order without code: intake builds
// both zips, the worker unpacks exec.zip.
func BenchmarkBuildAndUnpackWithoutCode(b *testing.B) {
	sealed := bytes.Repeat([]byte(`"ENC[AES256_GCM,data:bm90IGEgcmVhbCBzZWNyZXQ=,iv:aXYxMjM0NTY3ODkwMTI=,tag:dGFnMTIzNDU2Nzg5MDEyMzQ1Ng==,type:str]",`), 12)
	dest := b.TempDir()
	for b.Loop() {
		exec, _, err := bundle.Build(testManifest(), sealed, "")
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := bundle.Unpack(exec, dest, bundle.DefaultLimits); err != nil {
			b.Fatal(err)
		}
	}
}
