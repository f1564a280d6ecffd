// Package codesource turns an order's code source into a folder that bundle.Build can pack: a
// local_path inside the job's folder, a git_folder of a repository at a commit, or a zip at an
// s3_location.
//
// A repository is fetched once per (repository, commit) by a Fetcher, however many orders use it
// and however many ask at once, and each order gets its own copy of its folder without .git.
//
// The git token and ssh key never appear in a URL, a command line, git's config, a log or an
// error: the token reaches git through its environment, the key through a 0600 file that is
// removed once the fetch is done, and git's own output is scrubbed of both before it is put into
// an error.
package codesource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"

	"github.com/iac-ci/iac-ci/bundle"
	"github.com/iac-ci/iac-ci/domain"
)

// DefaultGitBaseURL is where repositories named owner/name live unless a Fetcher says otherwise.
const DefaultGitBaseURL = "https://github.com"

// Fetcher fetches the code of a job's orders into a scratch folder. Use one Fetcher per job; it
// must not be copied after first use.
type Fetcher struct {
	WorkDir    string // scratch space for this job; the caller removes it
	GitBaseURL string // default DefaultGitBaseURL; a repository's URL is GitBaseURL + "/" + owner/name + ".git"
	GitToken   string // from git_token_location, may be ""
	GitSSHKey  string // from git_ssh_key_location, may be ""
	// GetObject reads an object for s3_location sources; an order with one fails when it is nil.
	GetObject func(ctx context.Context, bucket, key string) ([]byte, error)
	// BaseDir is the folder local_path is relative to; when empty, the job's BaseDir is used.
	BaseDir string

	mu      sync.Mutex
	clones  map[cloneKey]*clone
	gitPath string // the git binary; "git" from PATH unless a test wraps it
}

// Dir returns the folder holding the order's code, or "" when the order has no code source.
// local_path is returned where it is (after checking that it stays inside the base folder);
// git and s3 sources are fetched into WorkDir/orders/<order number>.
func (f *Fetcher) Dir(ctx context.Context, job domain.Job, o domain.Order) (string, error) {
	git := o.GitRepo != "" || o.GitFolder != ""
	sources := 0
	for _, set := range []bool{git, o.S3Location != "", o.LocalPath != ""} {
		if set {
			sources++
		}
	}
	switch {
	case sources > 1:
		return "", errors.New("code source: an order takes one of git_repo/git_folder, s3_location or local_path")
	case o.LocalPath != "":
		return f.localDir(job, o.LocalPath)
	case o.S3Location != "":
		return f.s3Dir(ctx, job, o)
	case git:
		return f.gitDir(ctx, job, o)
	}
	return "", nil
}

func (f *Fetcher) localDir(job domain.Job, local string) (string, error) {
	base := f.BaseDir
	if base == "" {
		base = job.BaseDir
	}
	if base == "" {
		return "", fmt.Errorf("local_path %q: there is no base folder to find it in (local_path works only for jobs read from a file)", local)
	}
	if filepath.IsAbs(local) {
		return "", fmt.Errorf("local_path %q: must be relative to the job file's folder", local)
	}
	base, err := filepath.Abs(base)
	if err != nil {
		return "", fmt.Errorf("local_path %q: %w", local, err)
	}
	if base, err = filepath.EvalSymlinks(base); err != nil {
		return "", fmt.Errorf("local_path %q: base folder: %w", local, err)
	}
	dir, err := filepath.EvalSymlinks(filepath.Join(base, local))
	if err != nil {
		return "", fmt.Errorf("local_path %q: %w", local, err)
	}
	if !within(base, dir) {
		return "", fmt.Errorf("local_path %q: resolves outside the job file's folder", local)
	}
	if err := isDir(dir); err != nil {
		return "", fmt.Errorf("local_path %q: %w", local, err)
	}
	return dir, nil
}

func (f *Fetcher) s3Dir(ctx context.Context, job domain.Job, o domain.Order) (string, error) {
	bucket, key, ok := parseS3Location(o.S3Location)
	if !ok {
		return "", fmt.Errorf("s3_location %q: want s3://bucket/key.zip", o.S3Location)
	}
	if f.GetObject == nil {
		return "", fmt.Errorf("s3_location %q: this engine has no object store to read it from", o.S3Location)
	}
	data, err := f.GetObject(ctx, bucket, key)
	if err != nil {
		return "", fmt.Errorf("s3_location %q: %w", o.S3Location, err)
	}
	dest, err := f.orderDir(job, o)
	if err != nil {
		return "", err
	}
	if err := bundle.UnpackZip(data, dest, bundle.DefaultLimits); err != nil {
		return "", fmt.Errorf("s3_location %q: %w", o.S3Location, err)
	}
	return dest, nil
}

func parseS3Location(loc string) (bucket, key string, ok bool) {
	rest, ok := strings.CutPrefix(loc, "s3://")
	if !ok {
		return "", "", false
	}
	bucket, key, ok = strings.Cut(rest, "/")
	return bucket, key, ok && bucket != "" && key != ""
}

func (f *Fetcher) gitDir(ctx context.Context, job domain.Job, o domain.Order) (string, error) {
	repo := orDefault(o.GitRepo, job.GitRepo)
	commit := orDefault(o.CommitHash, job.CommitHash)
	folder := orDefault(o.GitFolder, ".")
	if err := checkRepo(repo); err != nil {
		return "", err
	}
	if err := checkCommit(commit); err != nil {
		return "", err
	}
	if !filepath.IsLocal(folder) && folder != "." {
		return "", fmt.Errorf("git_folder %q: must be a relative path inside the repository", folder)
	}
	checkout, err := f.checkout(ctx, repo, commit)
	if err != nil {
		return "", err
	}
	at := commitLabel(commit)
	src, err := filepath.EvalSymlinks(filepath.Join(checkout, filepath.FromSlash(folder)))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("git_folder %q does not exist in %s at %s", folder, repo, at)
	}
	if err != nil {
		return "", fmt.Errorf("git_folder %q in %s at %s: %w", folder, repo, at, err)
	}
	if !within(checkout, src) {
		return "", fmt.Errorf("git_folder %q in %s at %s: resolves outside the repository", folder, repo, at)
	}
	if err := isDir(src); err != nil {
		return "", fmt.Errorf("git_folder %q in %s at %s: %w", folder, repo, at, err)
	}
	dest, err := f.orderDir(job, o)
	if err != nil {
		return "", err
	}
	if err := copyTree(src, dest); err != nil {
		return "", fmt.Errorf("git_folder %q in %s at %s: copy: %w", folder, repo, at, err)
	}
	return dest, nil
}

func orDefault(s, fallback string) string {
	if s != "" {
		return s
	}
	return fallback
}

func commitLabel(commit string) string {
	if commit == "" {
		return "the default branch head"
	}
	return "commit " + commit
}

// orderDir makes a fresh, empty folder for the order's code: WorkDir/orders/<order number>. The
// number is found in the job by name (or, before names are filled in, by value); an order that
// cannot be placed, or whose folder is taken, gets a new uniquely named folder instead.
func (f *Fetcher) orderDir(job domain.Job, o domain.Order) (string, error) {
	if f.WorkDir == "" {
		return "", errors.New("code source: the fetcher has no work folder")
	}
	parent := filepath.Join(f.WorkDir, "orders")
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", fmt.Errorf("code source: %w", err)
	}
	slot := ""
	for i, other := range job.Orders {
		if o.OrderName != "" && other.OrderName == o.OrderName || o.OrderName == "" && reflect.DeepEqual(other, o) {
			slot = domain.OrderNumString(i + 1)
			break
		}
	}
	if slot != "" {
		dir := filepath.Join(parent, slot)
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			return dir, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("code source: %w", err)
		}
	}
	dir, err := os.MkdirTemp(parent, orDefault(slot, "order")+"-*")
	if err != nil {
		return "", fmt.Errorf("code source: %w", err)
	}
	return dir, nil
}

// within reports whether path is dir or lies under it; both must be clean and absolute.
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && (rel == "." || filepath.IsLocal(rel))
}

func isDir(p string) error {
	info, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return errors.New("is not a folder")
	}
	return nil
}

// copyTree copies a checked-out folder, keeping modes and symlinks (bundle.Build judges where
// they point) and leaving out .git.
func copyTree(src, dest string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == ".git" && p != src {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dest, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case rel == ".":
			return nil
		case d.IsDir():
			return os.Mkdir(to, info.Mode().Perm()|0o700)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.Type().IsRegular():
			return copyFile(p, to, info.Mode().Perm())
		}
		return fmt.Errorf("%s: a %s, not a file, folder or symlink", rel, d.Type())
	})
}

func copyFile(from, to string, perm fs.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Chmod(to, perm) // after writing, so the umask does not clear an executable bit
}
