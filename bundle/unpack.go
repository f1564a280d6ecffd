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
	"path"
	"strings"
)

// Limits bound what an archive may unpack to. A zero or negative field takes its DefaultLimits
// value.
type Limits struct {
	MaxFiles      int   // entries under the code folder: files, folders and symlinks
	MaxTotalBytes int64 // decompressed bytes of every entry together
	MaxFileBytes  int64 // decompressed bytes of any one entry
}

// DefaultLimits fit any code folder an infrastructure repository should hand a CI job.
var DefaultLimits = Limits{MaxFiles: 20000, MaxTotalBytes: 2 << 30, MaxFileBytes: 1 << 30}

func (l Limits) orDefaults() Limits {
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultLimits.MaxFiles
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = DefaultLimits.MaxTotalBytes
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = DefaultLimits.MaxFileBytes
	}
	return l
}

// Bounds on the entries read into memory rather than onto disk.
const (
	maxManifestBytes = 4 << 20
	maxSealedBytes   = 64 << 20
)

// UnsafeError is an archive refused because of what it holds: an entry that would land outside
// the destination, a symlink out of it, too many or too large files, a corrupt entry, or (for a
// bundle) a missing or invalid manifest. Entry is the entry's name as the archive spells it, or
// "" when the archive as a whole is refused.
type UnsafeError struct {
	Entry, Reason string
}

func (e *UnsafeError) Error() string {
	if e.Entry == "" {
		return "bundle: " + e.Reason
	}
	return fmt.Sprintf("bundle entry %q: %s", e.Entry, e.Reason)
}

func refuse(entry, format string, args ...any) error {
	return &UnsafeError{Entry: entry, Reason: fmt.Sprintf(format, args...)}
}

// Unpack unpacks a bundle's code/ folder into dest, which must exist and be empty, and returns
// its manifest and sealed environment (nil for a stripped bundle). A refused bundle is an
// *UnsafeError. On any error dest may hold part of the code; the caller removes it.
func Unpack(zipData []byte, dest string, lim Limits) (Manifest, []byte, error) {
	var m Manifest
	special, err := unpack(zipData, dest, lim, func(special map[string][]byte) error {
		manifest, ok := special[ManifestName]
		if !ok {
			return refuse(ManifestName, "is missing")
		}
		if err := json.Unmarshal(manifest, &m); err != nil {
			return refuse(ManifestName, "is not a manifest: %v", err)
		}
		if err := m.Validate(); err != nil {
			return refuse(ManifestName, "is not valid: %v", err)
		}
		return nil
	})
	if err != nil {
		return Manifest{}, nil, err
	}
	return m, special[SealedName], nil
}

// UnpackZip unpacks a whole zip of code (an s3_location source) into dest, which must exist and
// be empty, with the same checks as Unpack. A refused archive is an *UnsafeError. On any error
// dest may hold part of the archive; the caller removes it.
func UnpackZip(zipData []byte, dest string, lim Limits) error {
	_, err := unpack(zipData, dest, lim, nil)
	return err
}

// planned is an entry that passed every check that can be made before writing.
type planned struct {
	f      *zip.File
	rel    string
	kind   kind
	target string
}

// unpack checks the whole archive before writing anything, then writes folders and files, and
// only then symlinks: while files are written no symlink exists under dest, so no write can be
// steered through one. Every write goes through an os.Root as a second wall.
//
// With a checkBundle func the archive is a bundle: code comes from code/, and the manifest and
// sealed environment are read into memory, handed to checkBundle before anything is written, and
// returned by name.
func unpack(data []byte, dest string, lim Limits, checkBundle func(map[string][]byte) error) (map[string][]byte, error) {
	lim = lim.orDefaults()
	asBundle := checkBundle != nil
	existing, err := os.ReadDir(dest)
	if err != nil {
		return nil, fmt.Errorf("unpack: %w", err)
	}
	if len(existing) > 0 {
		return nil, fmt.Errorf("unpack: destination %s is not empty", dest)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) { // insecure names are judged below
		return nil, refuse("", "not a zip archive: %v", err)
	}

	var (
		plan    []planned
		order   []string
		shape   = newTree()
		special = map[string]*zip.File{}
		claimed uint64
	)
	for _, f := range zr.File {
		parts, reason := splitName(f.Name)
		if reason != "" {
			return nil, refuse(f.Name, "%s", reason)
		}
		mode := f.Mode()
		k := kindFile
		switch {
		case mode.IsDir():
			k = kindDir
		case mode&fs.ModeSymlink != 0:
			k = kindLink
		case !mode.IsRegular():
			return nil, refuse(f.Name, "is a %s, not a file, folder or symlink", mode.Type())
		}
		if k == kindFile {
			// Headers can lie low, never usefully high: a claim over the limit is refused
			// at once, and an honest-looking claim is still checked while decompressing.
			if f.UncompressedSize64 > uint64(lim.MaxFileBytes) {
				return nil, refuse(f.Name, "claims %d bytes, more than the limit of %d per file", f.UncompressedSize64, lim.MaxFileBytes)
			}
			if claimed += f.UncompressedSize64; claimed > uint64(lim.MaxTotalBytes) {
				return nil, refuse("", "claims more than the limit of %d bytes in all", lim.MaxTotalBytes)
			}
		}
		if asBundle {
			if len(parts) == 1 && (parts[0] == ManifestName || parts[0] == SealedName) && k == kindFile {
				if special[parts[0]] != nil {
					return nil, refuse(f.Name, "duplicate entry")
				}
				special[parts[0]] = f
				continue
			}
			if len(parts) == 0 || parts[0] != strings.TrimSuffix(CodePrefix, "/") {
				return nil, refuse(f.Name, "is not part of a bundle (%s, %s and %s only)", ManifestName, SealedName, CodePrefix)
			}
			parts = parts[1:]
		}
		if reason := localParts(parts); reason != "" {
			return nil, refuse(f.Name, "%s", reason)
		}
		if len(parts) == 0 {
			if k == kindDir {
				continue
			}
			return nil, refuse(f.Name, "names the working directory itself")
		}
		p := planned{f: f, rel: strings.Join(parts, "/"), kind: k}
		if k == kindLink {
			target, err := readEntry(f, maxLinkTarget, "symlink target is longer than %d bytes")
			if err != nil {
				return nil, err
			}
			p.target = string(target)
		}
		if reason := shape.add(p.rel, k, p.target); reason != "" {
			return nil, refuse(f.Name, "%s", reason)
		}
		if len(plan) == lim.MaxFiles {
			return nil, refuse("", "has more than the limit of %d entries", lim.MaxFiles)
		}
		plan = append(plan, p)
		order = append(order, p.rel)
	}
	if link, reason := shape.checkLinks(order); link != "" {
		return nil, refuse(entryName(plan, link), "%s", reason)
	}

	budget := lim.MaxTotalBytes
	read := map[string][]byte{}
	for name, f := range special {
		limit := min(lim.MaxFileBytes, budget, maxSealedBytes)
		if name == ManifestName {
			limit = min(limit, maxManifestBytes)
		}
		b, err := readEntry(f, limit, "is larger than %d bytes")
		if err != nil {
			return nil, err
		}
		budget -= int64(len(b))
		read[name] = b
	}
	if asBundle {
		if err := checkBundle(read); err != nil {
			return nil, err
		}
	}

	root, err := os.OpenRoot(dest)
	if err != nil {
		return nil, fmt.Errorf("unpack: %w", err)
	}
	defer root.Close()
	for _, p := range plan {
		switch p.kind {
		case kindDir:
			if err := root.MkdirAll(p.rel, 0o755); err != nil {
				return nil, fmt.Errorf("unpack %s: %w", p.f.Name, err)
			}
		case kindFile:
			n, err := writeFile(root, p, budget, lim)
			if err != nil {
				return nil, err
			}
			budget -= n
		}
	}
	for _, p := range plan {
		if p.kind != kindLink {
			continue
		}
		if err := root.MkdirAll(path.Dir(p.rel), 0o755); err != nil {
			return nil, fmt.Errorf("unpack %s: %w", p.f.Name, err)
		}
		if err := root.Symlink(p.target, p.rel); err != nil {
			return nil, fmt.Errorf("unpack %s: %w", p.f.Name, err)
		}
	}
	return read, nil
}

func entryName(plan []planned, rel string) string {
	for _, p := range plan {
		if p.rel == rel {
			return p.f.Name
		}
	}
	return rel
}

// writeFile decompresses one entry into place, stopping as soon as it passes the per-file limit
// or the bytes left of the archive's budget, whichever is smaller.
func writeFile(root *os.Root, p planned, budget int64, lim Limits) (int64, error) {
	limit := min(lim.MaxFileBytes, budget)
	if err := root.MkdirAll(path.Dir(p.rel), 0o755); err != nil {
		return 0, fmt.Errorf("unpack %s: %w", p.f.Name, err)
	}
	rc, err := p.f.Open()
	if err != nil {
		return 0, refuse(p.f.Name, "cannot be read: %v", err)
	}
	defer rc.Close()
	out, err := root.OpenFile(p.rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, fmt.Errorf("unpack %s: %w", p.f.Name, err)
	}
	src := &sourceReader{r: rc}
	n, err := io.Copy(out, io.LimitReader(src, limit))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && src.err == nil {
		// One more byte means the entry is larger than allowed; it is never written.
		var probe [1]byte
		if extra, _ := io.ReadFull(src, probe[:]); extra > 0 {
			if limit == lim.MaxFileBytes {
				return n, refuse(p.f.Name, "unpacks to more than the limit of %d bytes per file", lim.MaxFileBytes)
			}
			return n, refuse(p.f.Name, "takes the archive past the limit of %d bytes in all", lim.MaxTotalBytes)
		}
	}
	switch {
	case src.err != nil:
		return n, refuse(p.f.Name, "is corrupt: %v", src.err)
	case err != nil:
		return n, fmt.Errorf("unpack %s: %w", p.f.Name, err)
	}
	if err := root.Chmod(p.rel, p.f.Mode().Perm()); err != nil {
		return n, fmt.Errorf("unpack %s: %w", p.f.Name, err)
	}
	return n, nil
}

// readEntry reads a small entry into memory, refusing it past limit bytes.
func readEntry(f *zip.File, limit int64, tooLarge string) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, refuse(f.Name, "cannot be read: %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, refuse(f.Name, "is corrupt: %v", err)
	}
	if int64(len(b)) > limit {
		return nil, refuse(f.Name, tooLarge, limit)
	}
	return b, nil
}

// sourceReader remembers a read error, so a corrupt archive is told apart from a failing disk.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(b []byte) (int, error) {
	n, err := s.r.Read(b)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}
