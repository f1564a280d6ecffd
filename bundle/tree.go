package bundle

import (
	"fmt"
	"path"
	"strings"
)

// The checks in this file are shared by Build and by the unpackers, so a bundle Build accepts is
// always one Unpack accepts, and a hostile archive is judged by exactly the rules a real code
// folder is.

type kind int

const (
	kindDir kind = iota
	kindFile
	kindLink
)

// maxLinkHops is how many symlinks one resolution may follow before it is called a loop; Linux
// gives up at the same count (MAXSYMLINKS in the kernel's fs/namei.c).
const maxLinkHops = 40

// maxLinkTarget bounds a symlink's target, as PATH_MAX does on Linux.
const maxLinkTarget = 4096

// maxNamePart is the longest name one folder entry may have on Linux (NAME_MAX).
const maxNamePart = 255

// splitName checks an archive entry name and returns its parts, with empty and "." parts dropped.
// It refuses what could be read as a path off the working directory on any platform: absolute
// names, drive letters, backslashes (a separator on Windows), NUL bytes and ".." parts. The
// returned reason is empty when the name is acceptable.
func splitName(name string) (parts []string, reason string) {
	switch {
	case name == "":
		return nil, "has an empty name"
	case strings.IndexByte(name, 0) >= 0:
		return nil, "name contains a NUL byte"
	case strings.Contains(name, `\`):
		return nil, "name contains a backslash, a path separator on Windows"
	case strings.HasPrefix(name, "/"):
		return nil, "is an absolute path"
	case hasDrive(name):
		return nil, "names a Windows drive"
	}
	for _, p := range strings.Split(name, "/") {
		if len(p) > maxNamePart {
			return nil, fmt.Sprintf("has a part longer than %d bytes", maxNamePart)
		}
		if p != "" && p != "." {
			parts = append(parts, p)
		}
	}
	return parts, ""
}

// localParts checks parts that will be placed under the working directory for "..": one that
// climbs above it escapes; one that does not is still refused, because a name with ".." means
// something else once a symlink sits on its path.
func localParts(parts []string) string {
	if len(parts) > 0 && hasDrive(parts[0]) {
		return "names a Windows drive"
	}
	depth := 0
	dotdot := false
	for _, p := range parts {
		if p == ".." {
			dotdot = true
			depth--
			if depth < 0 {
				return "escapes the working directory"
			}
			continue
		}
		depth++
	}
	if dotdot {
		return `has a ".." element`
	}
	return ""
}

func hasDrive(name string) bool {
	return len(name) >= 2 && name[1] == ':' &&
		(name[0] >= 'a' && name[0] <= 'z' || name[0] >= 'A' && name[0] <= 'Z')
}

// tree is the shape of a code folder as a set of slash-separated paths relative to its root.
type tree struct {
	kinds map[string]kind   // entries listed explicitly
	links map[string]string // symlink path → target
	dirs  map[string]bool   // every path that is a parent of some entry
}

func newTree() *tree {
	return &tree{kinds: map[string]kind{}, links: map[string]string{}, dirs: map[string]bool{}}
}

// add records an entry and returns why it cannot be part of the tree, or "".
func (t *tree) add(p string, k kind, target string) string {
	if _, dup := t.kinds[p]; dup {
		return "duplicate entry"
	}
	if k != kindDir && t.dirs[p] {
		return "is a file or symlink but other entries sit under it"
	}
	for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
		if dk, ok := t.kinds[dir]; ok && dk != kindDir {
			return fmt.Sprintf("sits under %q, which is not a folder", dir)
		}
		t.dirs[dir] = true
	}
	t.kinds[p] = k
	if k == kindLink {
		if reason := linkTargetReason(target); reason != "" {
			return reason
		}
		t.links[p] = target
	}
	return ""
}

func linkTargetReason(target string) string {
	switch {
	case target == "":
		return "symlink has an empty target"
	case len(target) > maxLinkTarget:
		return "symlink target is too long"
	case strings.IndexByte(target, 0) >= 0:
		return "symlink target contains a NUL byte"
	case strings.Contains(target, `\`):
		return fmt.Sprintf("symlink target %q contains a backslash", target)
	case strings.HasPrefix(target, "/") || hasDrive(target):
		return fmt.Sprintf("symlink target %q is absolute", target)
	}
	return ""
}

// checkLinks resolves every symlink the way the kernel would once the tree is on disk, following
// the tree's other symlinks, and returns the first link whose target leaves the root. A chain of
// links that each look local one by one (d -> ".", l -> "d/..") is caught here. Names that the
// tree does not hold are taken to be folders, which is stricter than the kernel (it would stop
// there): a link that escapes only through a folder made later is still refused.
func (t *tree) checkLinks(order []string) (link, reason string) {
	budget := maxResolveSteps
	for _, p := range order {
		target, ok := t.links[p]
		if !ok {
			continue
		}
		if r := t.resolve(path.Dir(p), target, &budget); r != "" {
			return p, fmt.Sprintf("symlink target %q %s", target, r)
		}
	}
	return "", ""
}

// maxResolveSteps bounds the work of checking one archive's symlinks, so an archive built to make
// the check slow is refused instead. A real code folder needs a few steps per link.
const maxResolveSteps = 1 << 22

// resolve walks target from the folder dir, following the tree's symlinks, and says why the walk
// left the root (or looped, or cost too much), or "" when it stays inside. Only the part of the
// walk that is still among the tree's names can meet a symlink, so only that part is looked up.
func (t *tree) resolve(dir, target string, budget *int) string {
	var (
		depth int      // components below the root
		known []string // known[i] is the path of the first i+1 components, while they are the tree's
	)
	if dir != "." {
		for _, c := range strings.Split(dir, "/") {
			known = append(known, path.Join(append([]string{top(known)}, c)...))
		}
		depth = len(known)
	}
	pending := strings.Split(target, "/")
	hops := 0
	for len(pending) > 0 {
		if *budget--; *budget < 0 {
			return "takes too long to resolve among the archive's symlinks"
		}
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if depth == 0 {
				return "resolves outside the working directory"
			}
			if depth == len(known) {
				known = known[:len(known)-1]
			}
			depth--
			continue
		}
		if depth != len(known) { // below a name the tree does not hold: no symlink can be here
			depth++
			continue
		}
		next := c
		if depth > 0 {
			next = known[depth-1] + "/" + c
		}
		to, isLink := t.links[next]
		if !isLink {
			depth++
			if _, ok := t.kinds[next]; ok || t.dirs[next] {
				known = append(known, next)
			}
			continue
		}
		hops++
		if hops > maxLinkHops {
			return "goes through too many symlinks (a loop?)"
		}
		if strings.HasPrefix(to, "/") || hasDrive(to) {
			return "resolves to an absolute path"
		}
		// A link's target is read from the folder holding the link, where the walk stands.
		pending = append(strings.Split(to, "/"), pending...)
	}
	return ""
}

func top(known []string) string {
	if len(known) == 0 {
		return ""
	}
	return known[len(known)-1]
}
