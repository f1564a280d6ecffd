// Package folderblobs is the embedded adapter of the blob port. Each bucket is a folder, and
// each object a file inside it; or, when Options.Inline names a database, an object of up to
// Options.InlineMax bytes is a row of that database's table blob_objects instead, and only
// larger ones are files.
//
// Why rows: on the disks this project is measured on (ext4 on a virtual disk), creating a file
// costs 200-400 µs of kernel time, while a rename, unlink, open or read costs 5-20 µs and
// inserting a row into an SQLite database in WAL mode tens of µs. Every order leaves several
// small objects (its bundle, its stripped bundle, its log, its result; its run a request and a
// done object), so creating files weighed on the embedded engine: with its data folder on tmpfs,
// where creating a file is cheap, a 1000-order fan-out took 2.2 s instead of 3.3 s and one hop of
// a chain 3.2 ms instead of 7 ms. The embedded engine already has a database open for its queues
// and store, so it keeps small objects there, and large ones (long logs, big bundles), whose
// writing outweighs creating their file, as files.
//
// Files: a key's first two segments are folders and the rest is one file name (its slashes
// escaped), so "callbacks/<run>/0001/1/result.json" is the file "0001%2F1%2Fresult.json" in the
// folder callbacks/<run>: a run's objects share one folder, and writing one costs no new folders
// (making a folder costs as much as writing a small file on common file systems). Writes are
// atomic (a temporary file in the same folder, then renamed over the object), so a reader sees
// the old object or the new one, never part of one, and a crash leaves no partial object behind.
//
// Rows are written in one statement, so they are atomic too. A key is a row or a file, never
// both for long: a Put of a small body stores the row and then removes a file of that key, one
// of a large body renames its file into place and deletes the row, both under the database's
// write lock, so that concurrent writers (in one process or several sharing the folder and the
// database) leave exactly one copy, the last writer's. A reader looks for the row, then the
// file, and when it finds neither looks again under the write lock, so it never misses an object
// that turns from one into the other meanwhile.
//
// Unlike S3, a key of one or two segments cannot name an object and also be the folder of
// others: with "a/b" stored, a Put of "a" or of "a/b/c" fails, and the other way round. The
// folders make this so for files; rows follow the same rule (checked against rows and files
// under the write lock), so a bucket accepts the same keys whether it keeps rows or not.
//
// Presigned URLs are served by Handler under /blobs/{bucket}/{key...} and carry an expiry and an
// HMAC-SHA256 signature over the method, bucket, key and expiry. The signing key lives in the
// data folder (unless given), so URLs handed to running orders survive a restart.
//
// A Put of a result key (blobs.IsResultKey), through the API or a presigned URL, calls
// Options.Notify with the S3 event notification S3 would send, once the object is stored, so
// the results queue sees the same message as in the AWS deployment.
package folderblobs

import (
	"bytes"
	"context"
	"database/sql"
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
	// NotifyInTx, when set with Inline, notifies of a result kept as a row inside the
	// transaction that stores the row (the queue being on the same database), so the object and
	// its notification exist together or not at all, as S3 promises a notification for every
	// object stored; it returns a wake to call once that transaction commits. Results kept as
	// files, and every result when NotifyInTx is nil, are notified through Notify after the Put.
	NotifyInTx func(ctx context.Context, tx *sql.Tx, body []byte) (wake func(), err error)
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
	// Inline, when set, keeps objects of up to InlineMax bytes as rows of the table
	// blob_objects (see Table) in this SQLite database, created if missing, and only larger ones
	// as files. The buckets of one folder may share a database (their rows are told apart by
	// bucket name), and so may processes sharing the folder. A Bucket runs plain statements and
	// short transactions of its own on the database, so it must not be called from inside a
	// transaction of the same *sql.DB when that has a single connection, as internal/sqlitedb's
	// has: it would wait for itself. Rows are as durable as the database (Sync applies to files
	// only). When nil, every object is a file.
	Inline *sql.DB
	// InlineMax is the size in bytes of the largest object kept as a row when Inline is set;
	// DefaultInlineMax when zero.
	InlineMax int
}

// Bucket is one bucket, kept in a folder (and a table). It implements blobs.Bucket and is safe
// for concurrent use, also by several processes sharing the folder (and the database).
type Bucket struct {
	name    string
	root    string
	key     []byte
	baseURL func() string
	notify  func(ctx context.Context, body []byte) error
	// notifyInTx notifies of a result row in the row's own transaction (Options.NotifyInTx).
	notifyInTx func(ctx context.Context, tx *sql.Tx, body []byte) (wake func(), err error)
	now        func() time.Time
	maxBody    int64
	log        *slog.Logger
	sync       bool
	// db keeps objects of up to inlineMax bytes as rows; nil when every object is a file.
	db        *sql.DB
	st        *statements
	inlineMax int64
}

var _ blobs.Bucket = (*Bucket)(nil)

// Bucket names follow S3's rules, simplified: lower-case letters, digits, dots and hyphens,
// starting with a letter or digit, so a name is always one safe folder name.
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,62}$`)

// New opens (creating if needed) the bucket named bucket in the folder <dir>/<bucket>, and the
// table of Options.Inline when it is set.
func New(dir, bucket string, opts Options) (*Bucket, error) {
	if !bucketName.MatchString(bucket) {
		return nil, fmt.Errorf("bucket name %q: want 1 to 63 lower-case letters, digits, dots or hyphens, starting with a letter or digit", bucket)
	}
	if opts.InlineMax < 0 {
		return nil, fmt.Errorf("open bucket %s: InlineMax %d is negative", bucket, opts.InlineMax)
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
		name:       bucket,
		root:       root,
		key:        slices.Clone(key),
		baseURL:    opts.BaseURL,
		notify:     opts.Notify,
		notifyInTx: opts.NotifyInTx,
		now:        opts.Clock,
		maxBody:    opts.MaxBodyBytes,
		log:        opts.Logger,
		sync:       opts.Sync,
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
	if opts.Inline != nil {
		b.db, b.inlineMax = opts.Inline, int64(opts.InlineMax)
		if b.inlineMax == 0 {
			b.inlineMax = DefaultInlineMax
		}
		var err error
		if b.st, err = prepare(b.db); err != nil {
			return nil, fmt.Errorf("open bucket %s: %w", bucket, err)
		}
	}
	return b, nil
}

// Name is the bucket's name.
func (b *Bucket) Name() string { return b.name }

// Put stores body under key and, for a result key, notifies.
func (b *Bucket) Put(ctx context.Context, key string, body []byte) error {
	return b.PutBatch(ctx, []blobs.Object{{Key: key, Body: body}})
}

// PutBatch stores objs: the ones small enough to be rows in one transaction (all
// of them or none), larger ones as files one by one, and notifies of result keys.
func (b *Bucket) PutBatch(ctx context.Context, objs []blobs.Object) error {
	var rows []blobs.Object
	for _, o := range objs {
		if err := checkKey(o.Key); err != nil {
			return fmt.Errorf("put: %w", err)
		}
		if b.inlines(int64(len(o.Body))) {
			rows = append(rows, o)
		}
	}
	var notified []string // result keys putRows already notified of
	if len(rows) > 0 {
		var err error
		if notified, err = b.putRows(ctx, rows); err != nil {
			return err
		}
	}
	for _, o := range objs {
		if !b.inlines(int64(len(o.Body))) {
			if _, err := b.putFile(ctx, o.Key, bytes.NewReader(o.Body)); err != nil {
				return err
			}
		}
		if !slices.Contains(notified, o.Key) {
			if err := b.notifyCreated(ctx, o.Key, int64(len(o.Body))); err != nil {
				return err
			}
		}
	}
	return nil
}

// Get returns the object under key, or blobs.ErrNotFound.
func (b *Bucket) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	body, f, err := b.lookup(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if f == nil {
		return body, nil
	}
	defer f.Close()
	// An object's file never changes once in place (a Put renames another over it), so its size
	// is its body's.
	var buf bytes.Buffer
	if fi, err := f.Stat(); err == nil {
		buf.Grow(int(fi.Size()) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, mapError(err))
	}
	return buf.Bytes(), nil
}

// lookup finds key's object: its body when it is a row, or its file, open, when it is a file;
// blobs.ErrNotFound when neither exists. A Put that turns a file into a row removes the file only
// once the row is stored, and one that turns a row into a file deletes the row only once the file
// is in place, but between a look for the row and one for the file the object may turn from a
// file into a row. So a miss of both is checked again under the database's write lock, under
// which no object turns.
func (b *Bucket) lookup(ctx context.Context, key string) ([]byte, *os.File, error) {
	if b.db == nil {
		f, err := openObject(b.path(key))
		return nil, f, err
	}
	body, f, err := b.lookupIn(ctx, nil, key)
	if !errors.Is(err, blobs.ErrNotFound) {
		return body, f, err
	}
	err = b.locked(ctx, func(tx *sql.Tx) error {
		body, f, err = b.lookupIn(ctx, tx, key)
		return err
	})
	return body, f, err
}

// lookupIn looks for key's row (inside tx when it is not nil), then for its file.
func (b *Bucket) lookupIn(ctx context.Context, tx *sql.Tx, key string) ([]byte, *os.File, error) {
	body, err := b.getRow(ctx, tx, key)
	if !errors.Is(err, blobs.ErrNotFound) {
		return body, nil, err
	}
	f, err := openObject(b.path(key))
	return nil, f, err
}

// openObject opens the object file at path: blobs.ErrNotFound when there is none, or a folder.
func openObject(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, mapError(err)
	}
	fi, err := f.Stat()
	if err == nil && fi.IsDir() {
		err = blobs.ErrNotFound
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// List returns every key that starts with prefix, sorted. With Inline set, it reads the rows and
// walks the folder under the database's write lock, so that no object turns from a row into a
// file or back meanwhile (and is missed by both); writers of the database wait for the walk.
func (b *Bucket) List(ctx context.Context, prefix string) ([]string, error) {
	if b.db == nil {
		return b.listFiles(ctx, prefix)
	}
	var keys []string
	err := b.locked(ctx, func(tx *sql.Tx) error {
		rows, err := b.listRows(ctx, tx, prefix)
		if err != nil {
			return err
		}
		files, err := b.listFiles(ctx, prefix)
		keys = append(rows, files...)
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(keys)
	return slices.Compact(keys), nil
}

// listFiles returns the keys of the files that start with prefix, sorted.
func (b *Bucket) listFiles(ctx context.Context, prefix string) ([]string, error) {
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

// Delete removes the object under key, and the folders it leaves empty. With Inline set, the file
// goes first, then the row: the file behind a row can be a stale one (see putFile), and must not
// show once the row is gone.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := b.deleteFile(key); err != nil {
		return err
	}
	if b.db != nil {
		if err := b.deleteRow(ctx, key); err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
	}
	return nil
}

// deleteFile removes key's file, if any, and the folders it leaves empty.
func (b *Bucket) deleteFile(key string) error {
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

// inlines reports whether an object of size bytes is kept as a row.
func (b *Bucket) inlines(size int64) bool { return b.db != nil && size <= b.inlineMax }

// store writes r to the valid key atomically, as a row when it is small enough, and returns how
// many bytes it wrote and whether it also notified (see putRow). It reads no more than
// InlineMax+1 bytes before it knows which.
func (b *Bucket) store(ctx context.Context, key string, r io.Reader) (n int64, notified bool, err error) {
	if b.db != nil {
		head, err := io.ReadAll(io.LimitReader(r, b.inlineMax+1))
		if err != nil {
			return 0, false, fmt.Errorf("put %s: %w", key, err)
		}
		if b.inlines(int64(len(head))) {
			notified, err := b.putRow(ctx, key, head)
			return int64(len(head)), notified, err
		}
		r = io.MultiReader(bytes.NewReader(head), r)
	}
	n, err = b.putFile(ctx, key, r)
	return n, false, err
}

// putFile writes r to the valid key's file atomically and returns how many bytes it wrote. With
// Inline set, the file is renamed into place under the database's write lock, after checking that
// no row clashes with the key and before deleting the key's row, so that a concurrent putRow
// cannot remove the new file (see putRow). A crash between the rename and the commit leaves the
// old row in front of the new file: the object is the old one, as the Put never returned, and the
// next Put or Delete of the key removes the stale file.
func (b *Bucket) putFile(ctx context.Context, key string, r io.Reader) (int64, error) {
	path := b.path(key)
	f, err := createTemp(filepath.Dir(path))
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	n, err := write(f, r, b.sync)
	if err == nil {
		if b.db == nil {
			err = os.Rename(f.Name(), path)
		} else {
			// Once the file is in place, the Put completes even if its caller gives up.
			ctx := context.WithoutCancel(ctx)
			err = b.locked(ctx, func(tx *sql.Tx) error {
				if err := b.rowClash(ctx, tx, key); err != nil {
					return err
				}
				if err := os.Rename(f.Name(), path); err != nil {
					return err
				}
				_, err := tx.StmtContext(ctx, b.st.deleteRow).ExecContext(ctx, b.name, key)
				return err
			})
		}
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
// dir between the two steps, so a vanished folder is made again, a few times. It may also prune
// a folder of dir while MkdirAll makes it: MkdirAll then reports that the folder exists (its
// mkdir found it) though it is gone (its check after did not), so that is tried again too; a
// file where a folder should be keeps failing so, and its error is returned.
func createTemp(dir string) (*os.File, error) {
	var err error
	for range 50 {
		if err = os.MkdirAll(dir, 0o700); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrExist) {
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
