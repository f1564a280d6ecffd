package folderblobs_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/blobs/folderblobs"
	"github.com/iac-ci/iac-ci/internal/sqlitedb"
	"github.com/iac-ci/iac-ci/internal/sqlitedb/sqlitedbtest"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/queues/sqlitequeue"
)

// testInlineMax is the InlineMax of the tests' inline buckets: small, so that both kinds of
// object are cheap to make.
const testInlineMax = 1 << 10

// withInline returns opts keeping objects of up to max bytes as rows of a new database.
func withInline(t testing.TB, opts folderblobs.Options, max int) folderblobs.Options {
	t.Helper()
	opts.Inline, opts.InlineMax = sqlitedbtest.Open(t, ""), max
	return opts
}

// mode is how a test's bucket keeps its objects: files only, or rows up to inlineMax bytes.
type mode struct {
	name      string
	inlineMax int
}

var modes = []mode{{"files", 0}, {"inline", testInlineMax}}

func (m mode) opts(t testing.TB, opts folderblobs.Options) folderblobs.Options {
	if m.inlineMax == 0 {
		return opts
	}
	return withInline(t, opts, m.inlineMax)
}

// forModes runs f once per mode, in parallel.
func forModes(t *testing.T, f func(t *testing.T, m mode)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			f(t, m)
		})
	}
}

// inlineBucket is a bucket keeping rows up to testInlineMax bytes, with what a test inspects.
type inlineBucket struct {
	*folderblobs.Bucket
	dir string // the folder of all buckets
	db  *sql.DB
}

func newInline(t *testing.T, opts folderblobs.Options) inlineBucket {
	t.Helper()
	dir := t.TempDir()
	opts = withInline(t, opts, testInlineMax)
	b, _ := serve(t, dir, "internal", opts)
	return inlineBucket{Bucket: b, dir: dir, db: opts.Inline}
}

// copies reports whether key has a row and whether it has a file.
func (ib inlineBucket) copies(t *testing.T, key string) (row, file bool) {
	t.Helper()
	var n int
	if err := ib.db.QueryRow("SELECT count(*) FROM "+folderblobs.Table+" WHERE bucket = ? AND key = ?", ib.Name(), key).Scan(&n); err != nil {
		t.Fatal(err)
	}
	_, err := os.Lstat(objectFile(ib.dir, ib.Name(), key))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return n > 0, err == nil
}

// requireOneCopy fails unless key is a row (and no file) when row is set, or a file (and no
// row) otherwise, with the body want.
func (ib inlineBucket) requireOneCopy(t *testing.T, key string, wantRow bool, want []byte) {
	t.Helper()
	if row, file := ib.copies(t, key); row != wantRow || file == wantRow {
		t.Errorf("%s (%d bytes): row %v, file %v; want only a %s", key, len(want), row, file, map[bool]string{true: "row", false: "file"}[wantRow])
	}
	if got, err := ib.Get(t.Context(), key); err != nil || !bytes.Equal(got, want) {
		t.Errorf("Get %s: got %d bytes, %v; want the %d bytes last put", key, len(got), err, len(want))
	}
}

// objectFile is where the package keeps key's file (see the package comment).
func objectFile(dir, bucket, key string) string {
	segs := strings.SplitN(key, "/", 3)
	if len(segs) == 3 {
		segs[2] = strings.NewReplacer("%", "%25", "/", "%2F").Replace(segs[2])
	}
	return filepath.Join(append([]string{dir, bucket}, segs...)...)
}

func TestInlineSizeDecidesRowOrFile(t *testing.T) {
	t.Parallel()
	ib := newInline(t, folderblobs.Options{})
	atMax := bytes.Repeat([]byte("s"), testInlineMax)
	overMax := bytes.Repeat([]byte("L"), testInlineMax+1)
	for _, key := range []string{"top", "a/b", blobs.ExecKey("run-1", 1)} {
		if err := ib.Put(t.Context(), key, atMax); err != nil {
			t.Fatal(err)
		}
		ib.requireOneCopy(t, key, true, atMax)
		if files := filesUnder(t, filepath.Join(ib.dir, "internal")); len(files) != 0 {
			t.Errorf("files after a Put of InlineMax bytes: %q, want none", files)
		}
		other := key + "-large"
		if err := ib.Put(t.Context(), other, overMax); err != nil {
			t.Fatal(err)
		}
		ib.requireOneCopy(t, other, false, overMax)
		for _, k := range []string{key, other} {
			if err := ib.Delete(t.Context(), k); err != nil {
				t.Fatal(err)
			}
			if row, file := ib.copies(t, k); row || file {
				t.Errorf("after Delete %s: row %v, file %v; want neither", k, row, file)
			}
		}
	}
	if files := filesUnder(t, filepath.Join(ib.dir, "internal")); len(files) != 0 {
		t.Errorf("files after deleting everything: %q, want none", files)
	}
}

// A key changing between a row and a file, through the API and through presigned PUTs, keeps
// exactly one copy, and Get, presigned GET and List see the latest.
func TestInlineReplaceRowAndFile(t *testing.T) {
	t.Parallel()
	ib := newInline(t, folderblobs.Options{})
	ctx := t.Context()
	small := func(i int) []byte { return []byte(fmt.Sprintf("small %d", i)) }
	large := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, testInlineMax+100) }
	for _, key := range []string{"k", "runs/status.json", blobs.LogKey("run-1", 1, 1)} {
		for i, step := range []struct {
			body   []byte
			row    bool
			viaURL bool
		}{
			{small(0), true, false}, {large(1), false, false}, {small(2), true, false}, {large(3), false, false},
			{small(4), true, true}, {large(5), false, true}, {small(6), true, true},
		} {
			if step.viaURL {
				u, err := ib.PresignPut(ctx, key, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				if code, msg := httpDo(t, http.MethodPut, u, step.body); code != http.StatusOK {
					t.Fatalf("step %d: PUT %s: status %d (%s)", i, key, code, msg)
				}
			} else if err := ib.Put(ctx, key, step.body); err != nil {
				t.Fatalf("step %d: Put %s: %v", i, key, err)
			}
			ib.requireOneCopy(t, key, step.row, step.body)
			u, err := ib.PresignGet(ctx, key, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if code, got := httpDo(t, http.MethodGet, u, nil); code != http.StatusOK || got != string(step.body) {
				t.Errorf("step %d: presigned GET %s: status %d, %d bytes; want 200 and the %d bytes last put", i, key, code, len(got), len(step.body))
			}
			if keys, err := ib.List(ctx, key); err != nil || !slices.Equal(keys, []string{key}) {
				t.Errorf("step %d: List %s: got %q, %v; want it once", i, key, keys, err)
			}
		}
	}
}

// A crash between renaming a large object's file into place and deleting its row leaves both; the
// row is the object, and the next Put or Delete leaves no stale file behind.
func TestInlineStaleFileBehindRow(t *testing.T) {
	t.Parallel()
	ib := newInline(t, folderblobs.Options{})
	ctx := t.Context()
	key := blobs.LogKey("run-1", 1, 1)
	crashed := func() {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(objectFile(ib.dir, "internal", key)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(objectFile(ib.dir, "internal", key), []byte("uncommitted"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ib.db.Exec("INSERT OR REPLACE INTO "+folderblobs.Table+" VALUES ('internal', ?, 'old')", key); err != nil {
			t.Fatal(err)
		}
		if got, err := ib.Get(ctx, key); err != nil || string(got) != "old" {
			t.Fatalf("Get with a row and a file: got %q, %v; want the row", got, err)
		}
		if keys, err := ib.List(ctx, "logs/"); err != nil || !slices.Equal(keys, []string{key}) {
			t.Fatalf("List with a row and a file: got %q, %v; want the key once", keys, err)
		}
	}
	crashed()
	if err := ib.Put(ctx, key, []byte("new")); err != nil {
		t.Fatal(err)
	}
	ib.requireOneCopy(t, key, true, []byte("new"))
	crashed()
	if err := ib.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := ib.Get(ctx, key); !errors.Is(err, blobs.ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want blobs.ErrNotFound", err)
	}
	if files := filesUnder(t, filepath.Join(ib.dir, "internal")); len(files) != 0 {
		t.Errorf("files after Delete: %q, want none", files)
	}
}

func TestInlineListMergesRowsAndFiles(t *testing.T) {
	t.Parallel()
	ib := newInline(t, folderblobs.Options{})
	ctx := t.Context()
	large := bytes.Repeat([]byte("L"), testInlineMax+1)
	// Rows and files interleaved in key order, and keys that sort differently as paths.
	objects := map[string]bool{ // key: large
		"p/a": false, "p/b-d": true, "p/b/c": false, "p/b/e/f": true, "p/b/e/g": false, "pa": true, "q/x": false,
		"logs/r/0001/1.log": true, "logs/r/0001/2.log": false, "logs/r/0002/1.log": false, "logs/r2/0001/1.log": true,
	}
	for key, isLarge := range objects {
		body := []byte(key)
		if isLarge {
			body = large
		}
		if err := ib.Put(ctx, key, body); err != nil {
			t.Fatal(err)
		}
	}
	all := slices.Sorted(func(yield func(string) bool) {
		for k := range objects {
			if !yield(k) {
				return
			}
		}
	})
	for _, prefix := range []string{"", "p", "p/", "p/b", "p/b/", "p/b/e/", "logs/", "logs/r/", "logs/r/0001/", "logs/r2", "q/x", "none/", "p/a/", "\xff", "p\xff"} {
		var want []string
		for _, k := range all {
			if strings.HasPrefix(k, prefix) {
				want = append(want, k)
			}
		}
		if got, err := ib.List(ctx, prefix); err != nil || !slices.Equal(got, want) {
			t.Errorf("List %q: got %q, %v; want %q", prefix, got, err, want)
		}
	}
}

// A small result PUT to its presigned URL is kept once, as a row, and no file (blobtest checks
// its notification).
func TestInlinePresignedResultPutIsARow(t *testing.T) {
	t.Parallel()
	var n notifications
	ib := newInline(t, folderblobs.Options{Notify: n.notify})
	key := blobs.ResultKey("run-1", 1, 1)
	u, err := ib.PresignPut(t.Context(), key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"status":"succeeded"}`)
	if code, msg := httpDo(t, http.MethodPut, u, body); code != http.StatusOK {
		t.Fatalf("PUT %s: status %d (%s), want 200", key, code, msg)
	}
	ib.requireOneCopy(t, key, true, body)
	if files := filesUnder(t, filepath.Join(ib.dir, "internal")); len(files) != 0 {
		t.Errorf("files after a small presigned PUT: %q, want none", files)
	}
}

// With NotifyInTx, a result kept as a row is notified of in the transaction that stores it (here
// into a real results queue on the same database): once for a Put and once for a presigned PUT,
// never also through Notify; a notification that fails leaves no row. A result too large for a
// row is a file and is notified of through Notify.
func TestInlineNotifyInTx(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := sqlitedbtest.Open(t, "")
	broker, err := sqlitequeue.Open(db, []queues.Spec{{Name: queues.Results, Visibility: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	results, err := broker.Queue(queues.Results)
	if err != nil {
		t.Fatal(err)
	}
	var (
		n      notifications
		failTx error
	)
	dir := t.TempDir()
	b, _ := serve(t, dir, "internal", folderblobs.Options{
		Inline: db, InlineMax: testInlineMax, Notify: n.notify,
		NotifyInTx: func(ctx context.Context, tx *sql.Tx, body []byte) (func(), error) {
			if failTx != nil {
				return nil, failTx
			}
			return broker.SendInTx(ctx, tx, queues.Results, queues.Outgoing{Body: body})
		},
	})
	ib := inlineBucket{Bucket: b, dir: dir, db: db}
	queued := func() []blobs.ObjectRef {
		t.Helper()
		msgs, err := results.Receive(ctx, queues.ReceiveOptions{Max: queues.MaxBatch})
		if err != nil {
			t.Fatal(err)
		}
		var refs []blobs.ObjectRef
		for _, m := range msgs {
			r, err := blobs.ParseNotification(m.Body)
			if err != nil {
				t.Fatal(err)
			}
			refs = append(refs, r...)
		}
		return refs
	}

	body := []byte(`{"status":"succeeded"}`)
	key := blobs.ResultKey("run-1", 1, 1)
	if err := ib.Put(ctx, key, body); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got := queued(); len(got) != 1 || got[0].Key != key || got[0].Size != int64(len(body)) {
		t.Fatalf("after Put: queued %+v, want one notification of %s", got, key)
	}
	key2 := blobs.ResultKey("run-1", 2, 1)
	u, err := ib.PresignPut(ctx, key2, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, msg := httpDo(t, http.MethodPut, u, body); code != http.StatusOK {
		t.Fatalf("PUT %s: status %d (%s), want 200", key2, code, msg)
	}
	if got := queued(); len(got) != 1 || got[0].Key != key2 {
		t.Fatalf("after a presigned PUT: queued %+v, want one notification of %s", got, key2)
	}
	if got := n.refs(t); len(got) != 0 {
		t.Fatalf("Notify got %+v for results kept as rows, want nothing", got)
	}

	failTx = errors.New("queue unavailable")
	key3 := blobs.ResultKey("run-1", 3, 1)
	if err := ib.Put(ctx, key3, body); !errors.Is(err, failTx) {
		t.Fatalf("Put with a failing NotifyInTx: %v, want it to wrap %v", err, failTx)
	}
	if row, file := ib.copies(t, key3); row || file {
		t.Errorf("a result whose notification failed was kept (row %v, file %v)", row, file)
	}
	failTx = nil

	big := bytes.Repeat([]byte("x"), testInlineMax+1)
	key4 := blobs.ResultKey("run-1", 4, 1)
	if err := ib.Put(ctx, key4, big); err != nil {
		t.Fatalf("Put of a large result: %v", err)
	}
	if got := n.refs(t); len(got) != 1 || got[0].Key != key4 {
		t.Errorf("Notify got %+v, want one notification of the large result %s", got, key4)
	}
	if got := queued(); len(got) != 0 {
		t.Errorf("queued %+v for a result kept as a file, want nothing in the transaction", got)
	}
}

// The keys a bucket refuses, alone or beside others, are the same whether its objects are files,
// rows, or some of each.
func TestInlineRefusesTheKeysFilesRefuse(t *testing.T) {
	t.Parallel()
	small, large := []byte("x"), bytes.Repeat([]byte("L"), testInlineMax+1)
	invalid := []string{
		"", "/abs", "a//b", "a/", "..", "../escape", "a/../b", "a/./b", ".", "a/.put-123", "nul\x00byte",
		strings.Repeat("k", 1025),
	}
	// Each case stores the keys in before, then tries to put try.
	type tryCase struct {
		before []string
		try    string
	}
	var cases []tryCase
	for _, key := range invalid {
		cases = append(cases, tryCase{nil, key})
	}
	for _, before := range [][]string{{"a"}, {"a/b"}, {"a/b/c"}, {"a/b/c/d"}, {"a/b/c", "a/x"}} {
		for _, try := range []string{"a", "a/b", "a/b/c", "a/b/c/d", "a/bc", "ab", "a/b/c%2Fd", "a/x/y"} {
			cases = append(cases, tryCase{before, try})
		}
	}
	// refused runs every case on a new bucket of opts, with bodies of the given sizes, and
	// returns the refused ones.
	refused := func(t *testing.T, opts func() folderblobs.Options, beforeBody, tryBody []byte) []string {
		var out []string
		for _, c := range cases {
			b, err := folderblobs.New(t.TempDir(), "internal", opts())
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range c.before {
				if err := b.Put(t.Context(), k, beforeBody); err != nil {
					t.Fatalf("Put %q: %v", k, err)
				}
			}
			if err := b.Put(t.Context(), c.try, tryBody); err != nil {
				out = append(out, fmt.Sprintf("%q then %q", c.before, c.try))
				// A refused Put harms nothing.
				for _, k := range c.before {
					if got, err := b.Get(t.Context(), k); err != nil || !bytes.Equal(got, beforeBody) {
						t.Errorf("%q then %q: Get %q: %d bytes, %v", c.before, c.try, k, len(got), err)
					}
				}
				if keys, err := b.List(t.Context(), ""); err != nil || !slices.Equal(keys, slices.Sorted(slices.Values(c.before))) {
					t.Errorf("%q then refused %q: List: got %q, %v", c.before, c.try, keys, err)
				}
			}
		}
		return out
	}
	files := func() folderblobs.Options { return folderblobs.Options{SigningKey: []byte("k")} }
	want := refused(t, files, small, small)
	if len(want) < len(invalid)+10 {
		t.Fatalf("files refused only %q", want)
	}
	for _, tt := range []struct {
		name                string
		beforeBody, tryBody []byte
	}{
		{"rows then a row", small, small},
		{"rows then a file", small, large},
		{"files then a row", large, small},
		{"files then a file", large, large},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inline := func() folderblobs.Options {
				return withInline(t, folderblobs.Options{SigningKey: []byte("k")}, testInlineMax)
			}
			if got := refused(t, inline, tt.beforeBody, tt.tryBody); !slices.Equal(got, want) {
				t.Errorf("inline buckets refused\n%q\nfiles refused\n%q", got, want)
			}
		})
	}
}

// Writers turning one key between a row and a file, in two "processes" (two handles on the
// database), while readers read it: no reader misses the object or sees part of one, and one
// copy is left, the last one written.
func TestInlineConcurrentRowFileChanges(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dbPath := filepath.Join(t.TempDir(), "iac-ci.db")
	var buckets []*folderblobs.Bucket
	for range 2 {
		db, err := sqlitedb.Open(dbPath)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		b, err := folderblobs.New(dir, "internal", folderblobs.Options{Inline: db, InlineMax: testInlineMax})
		if err != nil {
			t.Fatal(err)
		}
		buckets = append(buckets, b)
	}
	ctx := t.Context()
	key := blobs.ExecKey("run-1", 1)
	body := func(w, i int) []byte {
		n := 10 + i%3
		if i%2 == 1 {
			n = testInlineMax + 50
		}
		return bytes.Repeat([]byte{byte('a' + w)}, n)
	}
	valid := func(got []byte) bool {
		return len(got) > 0 && bytes.Count(got, got[:1]) == len(got)
	}
	if err := buckets[0].Put(ctx, key, body(0, 0)); err != nil {
		t.Fatal(err)
	}
	var writers, readers sync.WaitGroup
	done := make(chan struct{})
	const rounds = 60
	for w := range 4 {
		writers.Go(func() {
			for i := range rounds {
				if err := buckets[w%2].Put(ctx, key, body(w, i)); err != nil {
					t.Errorf("writer %d: Put: %v", w, err)
					return
				}
			}
		})
	}
	for r := range 4 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				got, err := buckets[r%2].Get(ctx, key)
				if err != nil || !valid(got) {
					t.Errorf("reader %d: Get: %d bytes, %v", r, len(got), err)
					return
				}
				if keys, err := buckets[r%2].List(ctx, "exec/"); err != nil || !slices.Equal(keys, []string{key}) {
					t.Errorf("reader %d: List: %q, %v", r, keys, err)
					return
				}
			}
		})
	}
	writers.Wait()
	close(done)
	readers.Wait()
	// Each writer's last body is large: the object is a file, and no row is left.
	db, err := sqlitedb.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows int
	if err := db.QueryRow("SELECT count(*) FROM " + folderblobs.Table).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	got, err := buckets[1].Get(ctx, key)
	if err != nil || !valid(got) || len(got) != testInlineMax+50 || rows != 0 {
		t.Fatalf("after the writers: Get %d bytes, %v, %d rows; want one writer's last (large) body as a file", len(got), err, rows)
	}
	if files := filesUnder(t, filepath.Join(dir, "internal")); !slices.Equal(files, []string{"exec", "exec/run-1", "exec/run-1/0001%2Fexec.zip"}) {
		t.Fatalf("files after the writers: %q", files)
	}
}

// BenchmarkPut puts 2 KB objects, each under a new key of one run as an order's would be.
func BenchmarkPut(b *testing.B) {
	body := bytes.Repeat([]byte("r"), 2000)
	for _, inline := range []bool{false, true} {
		b.Run(map[bool]string{false: "files", true: "inline"}[inline], func(b *testing.B) {
			opts := folderblobs.Options{SigningKey: []byte("k")}
			if inline {
				opts.Inline = sqlitedbtest.Open(b, "") // InlineMax: the default
			}
			bucket, err := folderblobs.New(b.TempDir(), "internal", opts)
			if err != nil {
				b.Fatal(err)
			}
			i := 0
			for b.Loop() {
				i++
				if err := bucket.Put(b.Context(), blobs.ResultKey("20250101T000000Z-00112233aabbccdd", i, 1), body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// PutBatch stores small objects as rows in one transaction, all or none, larger ones as files,
// and notifies of each result once, in both modes.
func TestPutBatch(t *testing.T) {
	forModes(t, func(t *testing.T, m mode) {
		ctx := t.Context()
		var n notifications
		dir := t.TempDir()
		opts := m.opts(t, folderblobs.Options{Notify: n.notify})
		b, _ := serve(t, dir, "internal", opts)
		objs := []blobs.Object{
			{Key: "exec/r/0001/exec.zip", Body: []byte("zip one")},
			{Key: "exec/r/0002/exec.zip", Body: bytes.Repeat([]byte("z"), testInlineMax+1)},
			{Key: blobs.ResultKey("r", 1, 1), Body: []byte(`{"status":"succeeded"}`)},
		}
		if err := blobs.PutAll(ctx, b, objs...); err != nil {
			t.Fatalf("PutAll: %v", err)
		}
		for _, o := range objs {
			if got, err := b.Get(ctx, o.Key); err != nil || !bytes.Equal(got, o.Body) {
				t.Errorf("Get %s: %d bytes, %v; want the %d bytes put", o.Key, len(got), err, len(o.Body))
			}
		}
		if got := n.refs(t); len(got) != 1 || got[0].Key != objs[2].Key {
			t.Errorf("notifications %+v, want one of %s", got, objs[2].Key)
		}
		if opts.Inline == nil {
			return
		}
		// A key that clashes (a folder of another row) fails the batch, and its rows with it.
		bad := []blobs.Object{{Key: "p/a/x", Body: []byte("x")}, {Key: "exec/r", Body: []byte("clash")}}
		if err := blobs.PutAll(ctx, b, bad...); err == nil {
			t.Fatalf("PutAll of a clashing key: no error")
		}
		if _, err := b.Get(ctx, "p/a/x"); !errors.Is(err, blobs.ErrNotFound) {
			t.Errorf("Get p/a/x after a failed batch: %v, want ErrNotFound (nothing of the batch stored)", err)
		}
	})
}

// A batch refuses what the same keys put one by one would: putRows checks the folders of a
// run of keys once, and the check must still catch a clash that comes later in the batch.
// Each case first stores some objects as files (too large for rows), then puts the batch.
func TestPutBatchRefusesAsPutsWould(t *testing.T) {
	t.Parallel()
	cases := []struct{ files, batch []string }{
		{nil, []string{"a/b/c", "a/b/d", "a/b"}},     // a folder of earlier keys, after them
		{nil, []string{"a/b/c", "a/b", "a/b/d"}},     // and between keys of the same folders
		{nil, []string{"a/b", "a/b/c", "a/b/d"}},     // an object, then keys inside it
		{nil, []string{"a/b/c", "a/b/d", "a/x/y"}},   // no clash
		{nil, []string{"a/b/c", "a/x", "a/x/y"}},     // an object at a folder not yet checked
		{nil, []string{"a/b/c", "a/b/d", "a"}},       // the first folder
		{nil, []string{"a", "a/b/c", "a/b/d"}},       // an object at the first folder, first
		{nil, []string{"a/b/c", "a/b/c/d", "a/b/e"}}, // names inside a folder's file name: no clash
		{nil, []string{"x/y/z", "a/b/c", "a/b/c"}},   // a key twice
		{nil, []string{"a/b/c%2Fd", "a/b/c", "a/b/c/d"}},
		{[]string{"a/x"}, []string{"a/b/c", "a/b/d", "a/x/y"}}, // a file at a folder of a later key
		{[]string{"a/b/d"}, []string{"a/b/c", "a/b/d", "a/b/e"}},
		{[]string{"a/b/c/d"}, []string{"a/b/e", "a/b/c", "a/b/f"}}, // a folder of files
	}
	large := bytes.Repeat([]byte("L"), testInlineMax+1)
	for _, c := range cases {
		// The truth: the same keys put one by one into a bucket of files.
		files, err := folderblobs.New(t.TempDir(), "internal", folderblobs.Options{SigningKey: []byte("k")})
		if err != nil {
			t.Fatal(err)
		}
		b, err := folderblobs.New(t.TempDir(), "internal", withInline(t, folderblobs.Options{SigningKey: []byte("k")}, testInlineMax))
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range c.files {
			if err := files.Put(t.Context(), k, large); err != nil {
				t.Fatal(err)
			}
			if err := b.Put(t.Context(), k, large); err != nil {
				t.Fatal(err)
			}
		}
		wantErr := false
		for _, k := range c.batch {
			if err := files.Put(t.Context(), k, []byte("x")); err != nil {
				wantErr = true
			}
		}
		var objs []blobs.Object
		for _, k := range c.batch {
			objs = append(objs, blobs.Object{Key: k, Body: []byte("x")})
		}
		err = b.PutBatch(t.Context(), objs)
		if gotErr := err != nil; gotErr != wantErr {
			t.Errorf("files %q, then PutBatch %q: %v; one by one refused: %v", c.files, c.batch, err, wantErr)
		}
		if err != nil {
			if got, lerr := b.List(t.Context(), ""); lerr != nil || !slices.Equal(got, slices.Sorted(slices.Values(c.files))) {
				t.Errorf("files %q, then PutBatch %q refused, but the bucket holds %q (%v)", c.files, c.batch, got, lerr)
			}
		}
	}
}
