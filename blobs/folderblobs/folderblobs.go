// Package folderblobs is the embedded adapter of the blob port: each bucket is a folder, each
// object a file inside it. A key's first two segments are folders and the rest is one file name
// (its slashes escaped), so "callbacks/<run>/0001/1/result.json" is the file "0001%2F1%2Fresult.json"
// in the folder callbacks/<run>: a run's objects share one folder, and writing one costs no new
// folders (making a folder costs as much as writing a small file on common file systems).
// Writes are atomic (a temporary file in the same folder, then renamed over the object), so a
// reader sees the old object or the new one, never part of one, and a crash leaves no partial
// object behind. Unlike S3, a key of one or two segments cannot name an object and also be the
// folder of others: with "a/b" stored, a Put of "a" or of "a/b/c" fails, and the other way round.
//
// Presigned URLs are served by Handler under /blobs/{bucket}/{key...} and carry an expiry and an
// HMAC-SHA256 signature over the method, bucket, key and expiry. The signing key lives in the
// data folder (unless given), so URLs handed to running orders survive a restart.
//
// A Put of a result key (blobs.IsResultKey), through the API or a presigned URL, calls
// Options.Notify with the S3 event notification S3 would send, so the results queue sees the
// same message as in the AWS deployment.
package folderblobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/iac-ci/iac-ci/blobs"
)

// DefaultMaxBodyBytes is the largest body a presigned PUT accepts unless Options says otherwise.
const DefaultMaxBodyBytes = 512 << 20

// Options configure a Bucket. Every field is optional.
type Options struct {
	// SigningKey signs presigned URLs. When nil, the key in <dir>/.signing-key is used, created
	// (32 random bytes, mode 0600) on first use, so that URLs outlive the process.
	SigningKey []byte
	// BaseURL returns the scheme and host of the server running Handler, such as
	// "http://127.0.0.1:8080". It is a function because that address is known only once the
	// server listens. Presigning fails while it is nil or returns "".
	BaseURL func() string
	// Notify receives blobs.NotificationBody after a Put of a result key. When it fails, Put
	// returns its error: the object stays written, and a retried Put writes and notifies again.
	Notify func(ctx context.Context, body []byte) error
	// Clock tells the time for expiries and notifications; time.Now when nil.
	Clock func() time.Time
	// MaxBodyBytes bounds a presigned PUT's body; DefaultMaxBodyBytes when zero.
	MaxBodyBytes int64
	// Sync makes every Put wait until the object is on disk (fsync) before it is renamed into
	// place, so that it survives a power loss. Without it an object survives a crash of the
	// process (it is in the operating system's cache), which is the guarantee the embedded
	// engine's SQLite database gives in WAL mode with synchronous=NORMAL; an fsync costs about a
	// millisecond on common disks, several per order.
	Sync bool
	// Logger receives what Handler cannot tell its client (server-side failures); slog.Default
	// when nil.
	Logger *slog.Logger
}

// Bucket is one bucket, kept in a folder. It implements blobs.Bucket and is safe for
// concurrent use, also by several processes sharing the folder.
type Bucket struct {
	name    string
	root    string
	key     []byte
	baseURL func() string
	notify  func(ctx context.Context, body []byte) error
	now     func() time.Time
	maxBody int64
	log     *slog.Logger
	sync    bool
}

var _ blobs.Bucket = (*Bucket)(nil)

// Bucket names follow S3's rules, simplified: lower-case letters, digits, dots and hyphens,
// starting with a letter or digit, so a name is always one safe folder name.
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,62}$`)

// New opens (creating if needed) the bucket named bucket in the folder <dir>/<bucket>.
func New(dir, bucket string, opts Options) (*Bucket, error) {
	if !bucketName.MatchString(bucket) {
		return nil, fmt.Errorf("bucket name %q: want 1 to 63 lower-case letters, digits, dots or hyphens, starting with a letter or digit", bucket)
	}
	root := filepath.Join(dir, bucket)
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", bucket, err)
	}
	key := opts.SigningKey
	if key == nil {
		var err error
		if key, err = loadOrCreateSigningKey(dir); err != nil {
			return nil, fmt.Errorf("open bucket %s: %w", bucket, err)
		}
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("open bucket %s: empty signing key", bucket)
	}
	b := &Bucket{
		name:    bucket,
		root:    root,
		key:     slices.Clone(key),
		baseURL: opts.BaseURL,
		notify:  opts.Notify,
		now:     opts.Clock,
		maxBody: opts.MaxBodyBytes,
		log:     opts.Logger,
		sync:    opts.Sync,
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.maxBody <= 0 {
		b.maxBody = DefaultMaxBodyBytes
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	return b, nil
}

// Name is the bucket's name.
func (b *Bucket) Name() string { return b.name }

// Put stores body under key and, for a result key, notifies.
func (b *Bucket) Put(ctx context.Context, key string, body []byte) error {
	if _, err := b.store(key, bytes.NewReader(body)); err != nil {
		return err
	}
	return b.notifyCreated(ctx, key, int64(len(body)))
}

// Get returns the object under key, or blobs.ErrNotFound.
func (b *Bucket) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	body, err := os.ReadFile(b.path(key))
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, mapError(err))
	}
	return body, nil
}

// List returns every key that starts with prefix, sorted.
func (b *Bucket) List(ctx context.Context, prefix string) ([]string, error) {
	// Walk only the deepest folder the prefix names (a key's first two segments are folders). A
	// prefix whose folder part is no valid key matches no key, and must not lead the walk out of
	// the bucket.
	start := b.root
	if segs := strings.Split(prefix, "/"); len(segs) > 1 {
		dirs := segs[:min(len(segs)-1, folderSegments)]
		if checkKey(strings.Join(dirs, "/")) != nil {
			return nil, nil
		}
		start = filepath.Join(append([]string{b.root}, dirs...)...)
	}
	var keys []string
	err := filepath.WalkDir(start, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if isGone(err) { // the folder was never made, or a concurrent Delete pruned it
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), tempPrefix) || strings.HasPrefix(d.Name(), signingKeyFile) {
			return nil
		}
		rel, err := filepath.Rel(b.root, path)
		if err != nil {
			return err
		}
		if key := keyOf(filepath.ToSlash(rel)); strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	slices.Sort(keys)
	return keys, nil
}

// Delete removes the object under key, and the folders it leaves empty.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	path := b.path(key)
	// A folder at the key's path holds other objects; the object itself does not exist.
	if fi, err := os.Lstat(path); err != nil || fi.IsDir() {
		if err != nil && !isGone(err) {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		return nil
	}
	if err := os.Remove(path); err != nil && !isGone(err) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	b.prune(filepath.Dir(path))
	return nil
}

// prune removes dir and its parents inside the bucket while they are empty. Runs come and go;
// without pruning, their empty folders would pile up. Removing a folder fails, harmlessly, once
// it is not empty, and a Put racing with the pruning makes its folder again (see createTemp).
func (b *Bucket) prune(dir string) {
	for ; dir != b.root && strings.HasPrefix(dir, b.root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			return
		}
	}
}

// tempPrefix starts the name of a file being written. Keys may not have a segment that starts
// with it, so List can tell a write in progress (or one a crash cut short) from an object.
const tempPrefix = ".put-"

// store writes r to key atomically and returns how many bytes it wrote.
func (b *Bucket) store(key string, r io.Reader) (int64, error) {
	if err := checkKey(key); err != nil {
		return 0, fmt.Errorf("put: %w", err)
	}
	path := b.path(key)
	f, err := createTemp(filepath.Dir(path))
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	n, err := write(f, r, b.sync)
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		b.prune(filepath.Dir(path))
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	return n, nil
}

// write copies r into f, syncs it if asked, and closes it. The sync comes before the caller's
// rename: otherwise a power loss could leave the object's name on data never written.
func write(f *os.File, r io.Reader, sync bool) (int64, error) {
	n, err := io.Copy(f, r)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// createTemp creates a temporary file in dir, making dir first. A concurrent Delete may prune
// dir between the two steps, so a vanished folder is made again, a few times.
func createTemp(dir string) (*os.File, error) {
	var err error
	for range 50 {
		if err = os.MkdirAll(dir, 0o700); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if err == nil {
			var f *os.File
			if f, err = os.CreateTemp(dir, tempPrefix+"*"); err == nil {
				return f, nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
		}
	}
	return nil, err
}

func (b *Bucket) notifyCreated(ctx context.Context, key string, size int64) error {
	if b.notify == nil || !blobs.IsResultKey(key) {
		return nil
	}
	if err := b.notify(ctx, blobs.NotificationBody(b.name, key, size, b.now())); err != nil {
		return fmt.Errorf("notify result %s: %w", key, err)
	}
	return nil
}

// folderSegments is how many of a key's segments are folders; the rest is one file name.
const folderSegments = 2

// nameEscaper escapes the segments a key keeps in its file name; '%' first, so unescaping is
// unambiguous, and a key's prefix maps onto its file name's prefix.
var (
	nameEscaper   = strings.NewReplacer("%", "%25", "/", "%2F")
	nameUnescaper = strings.NewReplacer("%2F", "/", "%25", "%")
)

// path is where key's object lives (see the package comment).
func (b *Bucket) path(key string) string {
	segs := strings.SplitN(key, "/", folderSegments+1)
	if len(segs) > folderSegments {
		segs[folderSegments] = nameEscaper.Replace(segs[folderSegments])
	}
	return filepath.Join(append([]string{b.root}, segs...)...)
}

// keyOf is the key of the object at rel, a slash-separated path inside the bucket's folder.
func keyOf(rel string) string {
	segs := strings.SplitN(rel, "/", folderSegments+1)
	if len(segs) > folderSegments {
		segs[folderSegments] = nameUnescaper.Replace(segs[folderSegments])
	}
	return strings.Join(segs, "/")
}

// errInvalidKey: a key that cannot name a file inside the bucket's folder.
var errInvalidKey = errors.New("invalid key")

// maxKeyBytes is S3's limit on a key's length.
const maxKeyBytes = 1024

// checkKey accepts the keys that map onto a path inside the bucket's folder.
func checkKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("key is empty: %w", errInvalidKey)
	case len(key) > maxKeyBytes:
		return fmt.Errorf("key %.40q... is longer than %d bytes: %w", key, maxKeyBytes, errInvalidKey)
	case strings.HasPrefix(key, "/"):
		return fmt.Errorf("key %q starts with '/': %w", key, errInvalidKey)
	case strings.IndexByte(key, 0) >= 0:
		return fmt.Errorf("key %q holds a NUL byte: %w", key, errInvalidKey)
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("key %q has an empty segment: %w", key, errInvalidKey)
		case seg == "." || seg == "..":
			return fmt.Errorf("key %q has a %q segment: %w", key, seg, errInvalidKey)
		case strings.HasPrefix(seg, tempPrefix):
			return fmt.Errorf("key %q has a segment starting with %q, which is reserved: %w", key, tempPrefix, errInvalidKey)
		}
	}
	return nil
}

// mapError turns the file system's answers that mean "no object under that key" into
// blobs.ErrNotFound: a missing file, a missing folder, a file where a folder was expected
// ("a/b" when "a" is an object) and a folder where a file was expected ("a" when "a/b" is).
func mapError(err error) error {
	if isGone(err) || errors.Is(err, syscall.EISDIR) {
		return blobs.ErrNotFound
	}
	return err
}

func isGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
