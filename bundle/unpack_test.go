package bundle_test

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iac-ci/iac-ci/bundle"
)

// entry is one member of a hand-made archive. A non-nil raw is a deflate stream written as is,
// with size as the uncompressed size the headers claim (a bomb can lie about it).
type entry struct {
	name string
	body string
	mode fs.FileMode
	raw  []byte
	size uint64
}

func file(name, body string) entry { return entry{name: name, body: body, mode: 0o644} }
func link(name, target string) entry {
	return entry{name: name, body: target, mode: fs.ModeSymlink | 0o777}
}

func manifestEntry(t testing.TB) entry {
	b, err := json.Marshal(testManifest())
	if err != nil {
		t.Fatal(err)
	}
	return file(bundle.ManifestName, string(b))
}

func zipOf(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		h.SetMode(e.mode)
		var (
			w   io.Writer
			err error
		)
		if e.raw != nil {
			h.CompressedSize64 = uint64(len(e.raw))
			h.UncompressedSize64 = e.size
			w, err = zw.CreateRaw(h)
			if err == nil {
				_, err = w.Write(e.raw)
			}
		} else {
			w, err = zw.CreateHeader(h)
			if err == nil {
				_, err = io.WriteString(w, e.body)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const gigabyte = 1 << 30

// deflatedZeros returns a deflate stream of 1 GiB of zeros, about 1.3 MB. A flushed deflate
// chunk ends on a byte boundary and is not final, so one compressed MiB repeated 1024 times, then
// an empty final block, is a valid stream (RFC 1951 §3.2.3); its back-references only ever reach
// zeros, whichever copy they sit in.
func deflatedZeros(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	finalEmptyBlock := []byte{0x03, 0x00} // BFINAL=1, fixed Huffman, end-of-block
	return append(bytes.Repeat(buf.Bytes(), gigabyte>>20), finalEmptyBlock...)
}

// setupDest returns an empty destination three folders below a fresh root, so a write that
// climbs out of it with "../" still lands somewhere the test can see.
func setupDest(t testing.TB) (root, dest string) {
	root = t.TempDir()
	dest = filepath.Join(root, "a", "b", "dest")
	if err := os.MkdirAll(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	return root, dest
}

// checkContained fails when anything under root but outside dest exists, or a symlink under dest
// points out of it, and returns the bytes held by regular files under dest.
func checkContained(t testing.TB, root, dest string) int64 {
	t.Helper()
	var held int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dest, p)
		inside := rel == "." || filepath.IsLocal(rel)
		if !inside {
			if strings.HasPrefix(dest, p) { // a folder on the way down to dest
				return nil
			}
			t.Errorf("written outside the destination: %s", p)
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if filepath.IsAbs(target) {
				t.Errorf("symlink %s is absolute: %q", p, target)
			}
			if real, err := filepath.EvalSymlinks(p); err == nil {
				if r, _ := filepath.Rel(dest, real); r != "." && !filepath.IsLocal(r) {
					t.Errorf("symlink %s resolves outside the destination: %s", p, real)
				}
			}
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			held += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return held
}

func TestUnpackRefusesHostileArchives(t *testing.T) {
	t.Parallel()
	small := bundle.Limits{MaxFiles: 5, MaxTotalBytes: 1000, MaxFileBytes: 600}
	tests := []struct {
		name    string
		entries func(t testing.TB) []entry
		lim     bundle.Limits
		entry   string // the entry the refusal names; "*" for any
		reason  string // part of the reason
	}{
		{"zip slip", one(file("code/../../etc/x", "owned")), small, "code/../../etc/x", "escapes the working directory"},
		{"zip slip deep", one(file("code/a/../../../../x", "owned")), small, "code/a/../../../../x", "escapes the working directory"},
		{"dot dot inside", one(file("code/a/../b", "x")), small, "code/a/../b", `".."`},
		{"absolute", one(file("/etc/cron.d/x", "owned")), small, "/etc/cron.d/x", "absolute"},
		{"windows drive", one(file("C:/Windows/x", "owned")), small, "C:/Windows/x", "drive"},
		{"windows drive under code", one(file("code/C:/Windows/x", "owned")), small, "code/C:/Windows/x", "drive"},
		{"backslash", one(file(`code/..\..\x`, "owned")), small, `code/..\..\x`, "backslash"},
		{"nul", one(file("code/a\x00b", "x")), small, "code/a\x00b", "NUL"},
		{"symlink out", one(link("code/l", "../../etc")), small, "code/l", "resolves outside"},
		{"symlink absolute", one(link("code/l", "/etc")), small, "code/l", "absolute"},
		{"symlink chain out", one(link("code/d", "."), link("code/l", "d/..")), small, "code/l", "resolves outside"},
		{"symlink chain through folders", one(link("code/x/up", ".."), link("code/y", "x/up/..")), small, "code/y", "resolves outside"},
		{"symlink loop", one(link("code/a", "b"), link("code/b", "a")), small, "code/a", "too many symlinks"},
		{"write through symlink", one(link("code/l", "sub"), file("code/l/x", "x")), small, "code/l/x", "not a folder"},
		{"file under file", one(file("code/f", "x"), file("code/f/x", "x")), small, "code/f/x", "not a folder"},
		{"duplicate", one(file("code/a", "1"), file("code/a", "2")), small, "code/a", "duplicate"},
		{"duplicate after cleaning", one(file("code/a", "1"), file("code/./a", "2")), small, "code/./a", "duplicate"},
		{"duplicate manifest", func(t testing.TB) []entry { return []entry{manifestEntry(t), manifestEntry(t)} }, small, bundle.ManifestName, "duplicate"},
		{"stray entry", one(file("notes.txt", "x")), small, "notes.txt", "not part of a bundle"},
		{"named pipe", one(entry{name: "code/p", mode: fs.ModeNamedPipe | 0o644}), small, "code/p", "not a file, folder or symlink"},
		{"too many files", one(file("code/1", ""), file("code/2", ""), file("code/3", ""), file("code/4", ""), file("code/5", ""), file("code/6", "")), small, "", "more than the limit of 5 entries"},
		{"file over limit", one(file("code/big", strings.Repeat("x", 601))), small, "code/big", "limit of 600 per file"},
		{"total over limit", one(file("code/a", strings.Repeat("x", 500)), file("code/b", strings.Repeat("x", 501))), small, "", "limit of 1000 bytes"},
		{"bomb", func(t testing.TB) []entry {
			return []entry{manifestEntry(t), {name: "code/zeros", mode: 0o644, raw: deflatedZeros(t), size: gigabyte}}
		}, bundle.Limits{MaxFileBytes: 8 << 20}, "code/zeros", "limit of 8388608 per file"},
		{"bomb with lying header", func(t testing.TB) []entry {
			return []entry{manifestEntry(t), {name: "code/zeros", mode: 0o644, raw: deflatedZeros(t), size: 1 << 20}}
		}, bundle.Limits{MaxFileBytes: 8 << 20}, "code/zeros", ""},
		{"symlinks built to be slow to check", func(t testing.TB) []entry {
			// Three chains of 40 links, each link's target 2000 "./" long: checking them all
			// would take millions of steps.
			es := []entry{manifestEntry(t), file("code/f", "x")}
			dots := strings.Repeat("./", 2000)
			for chain := range 3 {
				for i := range 40 {
					next := fmt.Sprintf("c%d-%d", chain, i+1)
					if i == 39 {
						next = "f"
					}
					es = append(es, link(fmt.Sprintf("code/c%d-%d", chain, i), dots+next))
				}
			}
			return es
		}, bundle.Limits{}, "*", "too long to resolve"},
		{"missing manifest", func(testing.TB) []entry { return []entry{file("code/a", "x")} }, small, bundle.ManifestName, "missing"},
		{"manifest not json", func(testing.TB) []entry { return []entry{file(bundle.ManifestName, "{nope")} }, small, bundle.ManifestName, "not a manifest"},
		{"manifest without commands", func(testing.TB) []entry {
			return []entry{file(bundle.ManifestName, `{"RunID":"r","OrderNum":1,"Target":"lambda","Timeout":5}`)}
		}, small, bundle.ManifestName, "Cmds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root, dest := setupDest(t)
			_, _, err := bundle.Unpack(zipOf(t, tt.entries(t)...), dest, tt.lim)
			var unsafe *bundle.UnsafeError
			if !errors.As(err, &unsafe) {
				t.Fatalf("Unpack: got %v, want an *UnsafeError", err)
			}
			if tt.entry != "*" && unsafe.Entry != tt.entry {
				t.Errorf("entry: got %q, want %q (%v)", unsafe.Entry, tt.entry, err)
			}
			if !strings.Contains(unsafe.Reason, tt.reason) {
				t.Errorf("reason: got %q, want it to mention %q", unsafe.Reason, tt.reason)
			}
			if held := checkContained(t, root, dest); held > 8<<20 {
				t.Errorf("wrote %d bytes before refusing, more than the limit", held)
			}
		})
	}
}

// one returns a bundle of a valid manifest and the given entries.
func one(entries ...entry) func(testing.TB) []entry {
	return func(t testing.TB) []entry { return append([]entry{manifestEntry(t)}, entries...) }
}

func TestUnsafeErrorMessage(t *testing.T) {
	t.Parallel()
	_, dest := setupDest(t)
	_, _, err := bundle.Unpack(zipOf(t, manifestEntry(t), file("code/../../etc/x", "x")), dest, bundle.DefaultLimits)
	want := `bundle entry "code/../../etc/x": escapes the working directory`
	if err == nil || err.Error() != want {
		t.Fatalf("error: got %v, want %s", err, want)
	}
}

func TestUnpackRefusesWhatIsNotAZip(t *testing.T) {
	t.Parallel()
	_, _, err := bundle.Unpack([]byte("PK\x03\x04 but not really"), t.TempDir(), bundle.DefaultLimits)
	var unsafe *bundle.UnsafeError
	if !errors.As(err, &unsafe) || !strings.Contains(unsafe.Reason, "not a zip") {
		t.Fatalf("Unpack: got %v, want an *UnsafeError saying it is not a zip", err)
	}
}

func TestUnpackNeedsAnEmptyDestination(t *testing.T) {
	t.Parallel()
	dest := t.TempDir()
	if err := os.WriteFile(filepath.Join(dest, "left-over"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	exec, _, err := bundle.Build(testManifest(), nil, "")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = bundle.Unpack(exec, dest, bundle.DefaultLimits)
	var unsafe *bundle.UnsafeError
	if err == nil || errors.As(err, &unsafe) {
		t.Fatalf("Unpack into a used folder: got %v, want a plain error", err)
	}
}

func TestUnpackZip(t *testing.T) {
	t.Parallel()
	_, dest := setupDest(t)
	data := zipOf(t,
		entry{name: "envs/", mode: fs.ModeDir | 0o755},
		file("envs/prod.tfvars", "region = \"eu-west-1\"\n"),
		entry{name: "deploy.sh", body: "#!/bin/sh\n", mode: 0o755},
		link("prod", "envs/prod.tfvars"),
	)
	if err := bundle.UnpackZip(data, dest, bundle.DefaultLimits); err != nil {
		t.Fatalf("UnpackZip: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(dest, "prod"))
	if err != nil || string(got) != "region = \"eu-west-1\"\n" {
		t.Errorf("through the symlink: got %q, %v", got, err)
	}
	if info, err := os.Stat(filepath.Join(dest, "deploy.sh")); err != nil || info.Mode().Perm() != 0o755 {
		t.Errorf("deploy.sh: got %v, %v, want mode 0755", info, err)
	}

	// A plain zip has no manifest and no code/ prefix, so those are ordinary names here, and
	// the same escape checks apply.
	root, dest := setupDest(t)
	err = bundle.UnpackZip(zipOf(t, file("../x", "owned")), dest, bundle.DefaultLimits)
	var unsafe *bundle.UnsafeError
	if !errors.As(err, &unsafe) || unsafe.Reason != "escapes the working directory" {
		t.Fatalf("UnpackZip of a zip slip: got %v, want an *UnsafeError", err)
	}
	checkContained(t, root, dest)
}
