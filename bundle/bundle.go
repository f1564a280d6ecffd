// Package bundle writes and reads an order's bundle: exec.zip, which carries everything a worker
// needs to run one order (the manifest, the sealed environment and the code), and stripped.zip,
// the same without the sealed environment, kept for audit.
//
// Build is deterministic: the same manifest, sealed bytes and code give the same zip bytes.
// Unpack and UnpackZip treat every archive as hostile: nothing they write lands outside the
// destination folder, symlinks may only point inside it, and the number and size of files are
// limited by what the archive actually decompresses to, not by what its headers claim. Anything
// refused is reported as an *UnsafeError.
//
// The sealed environment is opaque here; this package never reads it and imports nothing that
// could.
package bundle

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/iac-ci/iac-ci/domain"
)

// Entry names inside a bundle.
const (
	ManifestName = "manifest.json"
	SealedName   = "secrets.enc.json"
	CodePrefix   = "code/"
)

// Manifest says what an order runs and under which identity. It holds names of variables but
// never their values: those travel only in the sealed environment.
type Manifest struct {
	RunID, TraceID, FlowID, OrderName, QueueID string
	OrderNum                                   int
	Target                                     domain.Target
	Cmds                                       []string
	Timeout                                    int                // seconds
	EnvNames                                   []string           // every variable in the sealed environment (no values)
	SecretNames                                []string           // the subset whose values are secret and must be masked
	SSMTargets                                 *domain.SSMTargets `json:",omitempty"`
	SSMDocumentName                            string             `json:",omitempty"` // ssm orders: the document to run
	CreatedAt                                  time.Time
}

// Validate reports the first thing that makes m unusable by a worker.
func (m Manifest) Validate() error {
	switch {
	case m.RunID == "":
		return errors.New("manifest: RunID is empty")
	case m.OrderNum < 1:
		return fmt.Errorf("manifest: OrderNum %d is not a 1-based order number", m.OrderNum)
	case !m.Target.Valid():
		return fmt.Errorf("manifest: Target %q is not an execution target", m.Target)
	case len(m.Cmds) == 0:
		return errors.New("manifest: Cmds is empty")
	case m.Timeout <= 0:
		return fmt.Errorf("manifest: Timeout %d is not a positive number of seconds", m.Timeout)
	}
	for _, s := range m.SecretNames {
		if !slices.Contains(m.EnvNames, s) {
			return fmt.Errorf("manifest: secret %q is not one of EnvNames", s)
		}
	}
	return nil
}

// zipEpoch is the time stamped on every entry, so a bundle's bytes depend only on its content.
// 1980-01-01 is the earliest time the zip format's MS-DOS date can hold.
var zipEpoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// Build writes an order's exec.zip (manifest.json, secrets.enc.json and the code folder under
// code/) and its stripped.zip (the same without secrets.enc.json). codeDir may be "" for an
// order without code. File modes are kept; symlinks are kept as symlinks when they resolve inside
// codeDir and are an error naming the file otherwise. The code must fit DefaultLimits, so every
// bundle Build returns is one Unpack accepts.
func Build(m Manifest, sealed []byte, codeDir string) (exec, stripped []byte, err error) {
	if err := m.Validate(); err != nil {
		return nil, nil, fmt.Errorf("build bundle: %w", err)
	}
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, nil, fmt.Errorf("build bundle: encode manifest: %w", err)
	}
	var code []codeEntry
	if codeDir != "" {
		if code, err = readCodeDir(codeDir, DefaultLimits); err != nil {
			return nil, nil, fmt.Errorf("build bundle: %w", err)
		}
	}

	entries := make([]buildEntry, 0, len(code)+2)
	entries = append(entries,
		buildEntry{name: ManifestName, data: manifest},
		buildEntry{name: SealedName, data: sealed},
	)
	for i := range code {
		entries = append(entries, buildEntry{name: CodePrefix + code[i].rel, code: &code[i]})
	}
	slices.SortFunc(entries, func(a, b buildEntry) int { return strings.Compare(a.name, b.name) })

	var execBuf bytes.Buffer
	zw := zip.NewWriter(&execBuf)
	for _, e := range entries {
		if err := e.write(zw); err != nil {
			return nil, nil, fmt.Errorf("build bundle: %s: %w", e.name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, nil, fmt.Errorf("build bundle: %w", err)
	}
	exec = execBuf.Bytes()

	// stripped.zip copies exec.zip's compressed entries as they are, so the two cannot drift.
	zr, err := zip.NewReader(bytes.NewReader(exec), int64(len(exec)))
	if err != nil {
		return nil, nil, fmt.Errorf("build bundle: reread exec.zip: %w", err)
	}
	var strippedBuf bytes.Buffer
	sw := zip.NewWriter(&strippedBuf)
	for _, f := range zr.File {
		if f.Name == SealedName {
			continue
		}
		if err := copyRaw(sw, f); err != nil {
			return nil, nil, fmt.Errorf("build bundle: copy %s to stripped.zip: %w", f.Name, err)
		}
	}
	if err := sw.Close(); err != nil {
		return nil, nil, fmt.Errorf("build bundle: %w", err)
	}
	return exec, strippedBuf.Bytes(), nil
}

// copyRaw is zip.Writer.Copy with a buffer of the pool's instead of a new 32 KB one per entry:
// those were a sixth of all the bytes a 1000-order run allocated.
func copyRaw(w *zip.Writer, f *zip.File) error {
	r, err := f.OpenRaw()
	if err != nil {
		return err
	}
	dst, err := w.CreateRaw(&f.FileHeader)
	if err != nil {
		return err
	}
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	_, err = io.CopyBuffer(dst, r, *buf)
	return err
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

type buildEntry struct {
	name string
	data []byte     // manifest.json and secrets.enc.json
	code *codeEntry // everything under code/
}

func (e buildEntry) write(zw *zip.Writer) error {
	h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: zipEpoch}
	c := e.code
	switch {
	case c == nil:
		// The manifest and the sealed environment are a few kilobytes, the latter ciphertext:
		// deflating them cost more CPU per order than the bytes it saved were worth.
		h.Method = zip.Store
		h.SetMode(0o600)
	case c.kind == kindDir:
		h.Name += "/"
		h.Method = zip.Store
		h.SetMode(fs.ModeDir | c.mode.Perm())
	case c.kind == kindLink:
		h.Method = zip.Store
		h.SetMode(fs.ModeSymlink | 0o777)
	default:
		h.SetMode(c.mode.Perm())
	}
	w, err := zw.CreateHeader(h)
	if err != nil {
		return err
	}
	switch {
	case c == nil:
		_, err = w.Write(e.data)
	case c.kind == kindLink:
		_, err = io.WriteString(w, c.target)
	case c.kind == kindFile:
		err = copyFile(w, *c)
	}
	return err
}

func copyFile(w io.Writer, c codeEntry) error {
	f, err := os.Open(c.abs)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, c.size+1))
	if err != nil {
		return err
	}
	if n != c.size {
		// The size was checked against the limits when the folder was read.
		return fmt.Errorf("changed size while being read (%d bytes, then %d)", c.size, n)
	}
	return nil
}

type codeEntry struct {
	rel    string // slash-separated, relative to the code folder
	abs    string
	kind   kind
	mode   fs.FileMode
	size   int64
	target string // symlinks
}

// readCodeDir lists a code folder and checks it against the rules Unpack applies.
func readCodeDir(codeDir string, lim Limits) ([]codeEntry, error) {
	root, err := filepath.EvalSymlinks(codeDir)
	if err != nil {
		return nil, fmt.Errorf("code folder: %w", err)
	}
	var (
		entries []codeEntry
		total   int64
		shape   = newTree()
	)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			if !d.IsDir() {
				return fmt.Errorf("code folder %s is not a folder", codeDir)
			}
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := codeEntry{rel: rel, abs: p, mode: info.Mode()}
		switch {
		case info.Mode().IsDir():
			e.kind = kindDir
		case info.Mode().IsRegular():
			e.kind = kindFile
			e.size = info.Size()
			if e.size > lim.MaxFileBytes {
				return fmt.Errorf("code file %q: %d bytes, more than the limit of %d", rel, e.size, lim.MaxFileBytes)
			}
			total += e.size
		case info.Mode()&fs.ModeSymlink != 0:
			e.kind = kindLink
			if e.target, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("code file %q: a %s, not a file, folder or symlink", rel, info.Mode().Type())
		}
		if _, reason := splitName(rel); reason != "" {
			return fmt.Errorf("code file %q: %s", rel, reason)
		}
		if reason := shape.add(rel, e.kind, e.target); reason != "" {
			return fmt.Errorf("code file %q: %s", rel, reason)
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(entries) > lim.MaxFiles {
		return nil, fmt.Errorf("code folder has %d entries, more than the limit of %d", len(entries), lim.MaxFiles)
	}
	if total > lim.MaxTotalBytes {
		return nil, fmt.Errorf("code folder holds %d bytes, more than the limit of %d", total, lim.MaxTotalBytes)
	}
	order := make([]string, len(entries))
	for i, e := range entries {
		order[i] = e.rel
	}
	if link, reason := shape.checkLinks(order); link != "" {
		return nil, fmt.Errorf("code file %q: %s", link, reason)
	}
	return entries, nil
}
