// Package embedded opens iac-ci's ports on one machine: the store and the queues in SQLite
// databases of a data folder, the buckets in a folder beside them (with rows for small objects),
// run keys as key files, secret values from a JSON file and the environment. Every target runs
// as a local process (no Starter), and results are handed to the orchestrator in process.
//
// Only one process may hold a data folder: everything in flight in it belongs to that process,
// so on open the messages a previous, dead process had received are made visible again at once.
package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/iac-ci/iac-ci/assembly"
	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/blobs/folderblobs"
	"github.com/iac-ci/iac-ci/internal/sqlitedb"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/queues/sqlitequeue"
	"github.com/iac-ci/iac-ci/secrets/localsecrets"
	"github.com/iac-ci/iac-ci/store/sqlitestore"
)

// The databases of a data folder.
const (
	StoreDB  = "iac-ci.db" // runs, orders and their history
	QueuesDB = "queues.db" // queue messages, and objects small enough to be rows
)

// ErrDataInUse: another iac-ci process has the data folder.
var ErrDataInUse = errors.New("data folder in use by another iac-ci process")

// Options say where and how to open.
type Options struct {
	DataDir string
	// Temporary says the data folder is deleted when the process ends (iac-ci run without
	// --data): its databases then never wait for the disk (sqlitedb.OpenTemporary).
	Temporary bool
	// SecretsFile holds secret values by location (--secrets); empty holds none.
	SecretsFile string
	// Getenv answers env: secret locations; nil is os.Getenv.
	Getenv func(string) string
	// Visibility is every queue's visibility timeout; consumers extend it while they work, so it
	// bounds how soon a dead consumer's work is retried. Zero is 15 s.
	Visibility time.Duration
	// BaseURL is where the host's HTTP server is reached: the base of the presigned URLs the
	// blob server answers. It is read when a URL is made.
	BaseURL func() string
	Log     *slog.Logger
}

// Backend is the ports on a data folder. Close it once the consumers have stopped.
type Backend struct {
	Ports assembly.Ports
	// ScratchDir is the data folder's scratch space, for assembly.Options.ScratchDir.
	ScratchDir string

	store          *sqlitestore.Store
	internal, done *folderblobs.Bucket

	closers []func() error
}

// Open opens (creating if needed) the ports on a data folder.
func Open(ctx context.Context, o Options) (*Backend, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Visibility <= 0 {
		o.Visibility = 15 * time.Second
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	b := &Backend{ScratchDir: filepath.Join(o.DataDir, "work")}
	lock, err := os.OpenFile(filepath.Join(o.DataDir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("%s: %w", o.DataDir, ErrDataInUse)
	}
	b.closers = append(b.closers, lock.Close)
	fail := func(err error) (*Backend, error) { b.Close(); return nil, err }

	// Two databases, each with its own connection and its own writer: the store's (runs,
	// orders, events), and the queues' with the objects small enough to be rows (kept together,
	// so that a result's row and its notification are one transaction). Their writes then go on
	// side by side; in one database they waited for each other, about a twentieth of a fan-out's
	// time. No transaction spans the two, as none spans DynamoDB and SQS.
	openDB := sqlitedb.Open
	if o.Temporary {
		openDB = sqlitedb.OpenTemporary
	}
	db, err := openDB(filepath.Join(o.DataDir, QueuesDB))
	if err != nil {
		return fail(err)
	}
	b.closers = append(b.closers, db.Close)
	if !o.Temporary {
		// A data folder of an earlier version kept the queues and the rows of objects in
		// iac-ci.db too: they move here, so that no queued message or stored bundle is lost.
		n, err := sqlitedb.MoveTables(ctx, db, filepath.Join(o.DataDir, StoreDB), sqlitequeue.Table, folderblobs.Table)
		if err != nil {
			return fail(err)
		}
		if n > 0 {
			o.Log.InfoContext(ctx, "moved queued messages and stored objects to "+QueuesDB, "rows", n)
		}
	}
	stateDB, err := openDB(filepath.Join(o.DataDir, StoreDB))
	if err != nil {
		return fail(err)
	}
	b.closers = append(b.closers, stateDB.Close)
	// Deleting a database under the running process loses, silently, everything written after.
	health, err := sqlitedb.FileCheck(filepath.Join(o.DataDir, QueuesDB), filepath.Join(o.DataDir, StoreDB))
	if err != nil {
		return fail(err)
	}
	specs := queues.Topology()
	for i := range specs {
		specs[i].Visibility = o.Visibility
	}
	broker, err := sqlitequeue.Open(db, specs)
	if err != nil {
		return fail(err)
	}
	if n, err := broker.ReleaseInFlight(ctx); err != nil {
		return fail(err)
	} else if n > 0 {
		o.Log.InfoContext(ctx, "released messages a previous process held", "messages", n)
	}
	st, err := sqlitestore.Open(stateDB)
	if err != nil {
		return fail(err)
	}
	keys, err := localsecrets.NewKeys(filepath.Join(o.DataDir, "keys"))
	if err != nil {
		return fail(err)
	}
	src, err := localsecrets.LoadSource(o.SecretsFile)
	if err != nil {
		return fail(err)
	}
	results, err := broker.Queue(queues.Results)
	if err != nil {
		return fail(err)
	}
	notify := func(ctx context.Context, body []byte) error {
		return results.Send(ctx, queues.Outgoing{Body: body})
	}
	// A result small enough to be a row is notified of in the transaction that stores it.
	notifyInTx := func(ctx context.Context, tx *sql.Tx, body []byte) (func(), error) {
		return broker.SendInTx(ctx, tx, queues.Results, queues.Outgoing{Body: body})
	}
	internal, err := folderblobs.New(filepath.Join(o.DataDir, "blobs"), "internal",
		folderblobs.Options{BaseURL: o.BaseURL, Notify: notify, NotifyInTx: notifyInTx, Inline: db})
	if err != nil {
		return fail(err)
	}
	done, err := folderblobs.New(filepath.Join(o.DataDir, "blobs"), "done", folderblobs.Options{BaseURL: o.BaseURL, Inline: db})
	if err != nil {
		return fail(err)
	}
	b.store, b.internal, b.done = st, internal, done
	b.Ports = assembly.Ports{
		Store: st, Queues: broker, Internal: internal, Done: done, Keys: keys, Secrets: src,
		Embedded: true, Getenv: o.Getenv, Visibility: o.Visibility,
		// Embedded, the sweeper's repairs come soon: a lost message here means a crash, and the
		// process that restarts after it should not wait minutes.
		RequeueAfter: 4 * o.Visibility, WaitRecheck: 4 * o.Visibility, Grace: 10 * time.Second,
		Routes: map[string]http.Handler{"/blobs/": folderblobs.Handler(internal, done)},
		Health: health,
	}
	return b, nil
}

// DefaultRetention is how long a data folder keeps a run after it ended.
const DefaultRetention = 30 * 24 * time.Hour

// pruneBatch bounds the runs one Prune pass removes.
const pruneBatch = 500

// Prune removes the runs that ended before before, with their orders, history, request,
// bundles, results, logs and done object, and returns how many it removed. A data folder would
// otherwise grow by every run it ever ran (about 11 KB a one-order run).
func (b *Backend) Prune(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		runs, err := b.store.Prune(ctx, before, pruneBatch)
		if err != nil {
			return total, err
		}
		for _, r := range runs {
			keys := []string{blobs.RequestKey(r.RunID)}
			for _, prefix := range []string{"exec/" + r.RunID + "/", "callbacks/" + r.RunID + "/", "logs/" + r.RunID + "/"} {
				more, err := b.internal.List(ctx, prefix)
				if err != nil {
					return total, err
				}
				keys = append(keys, more...)
			}
			for _, k := range keys {
				if err := b.internal.Delete(ctx, k); err != nil && !errors.Is(err, blobs.ErrNotFound) {
					return total, err
				}
			}
			if err := b.done.Delete(ctx, blobs.DoneKey(r.RunID)); err != nil && !errors.Is(err, blobs.ErrNotFound) {
				return total, err
			}
		}
		total += len(runs)
		if len(runs) < pruneBatch {
			return total, nil
		}
	}
}

// Close releases the data folder. Call it once nothing uses the ports.
func (b *Backend) Close() error {
	var first error
	for i := len(b.closers) - 1; i >= 0; i-- {
		if err := b.closers[i](); err != nil && first == nil {
			first = err
		}
	}
	b.closers = nil
	return first
}
