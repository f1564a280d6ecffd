package producers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"

	"filippo.io/age"
	"golang.org/x/sync/errgroup"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/bundle"
	"github.com/iac-ci/iac-ci/codesource"
	"github.com/iac-ci/iac-ci/deadletters"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/internal/crashpoint"
	"github.com/iac-ci/iac-ci/masking"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/sealing"
	"github.com/iac-ci/iac-ci/secrets"
	"github.com/iac-ci/iac-ci/store"
)

// Intake turns accepted requests into runs. It is idempotent: a request handled twice (a crash,
// a redelivered message) makes one run, seals with one key, and queues each order once.
type Intake struct {
	Engine  *engine.Engine
	Secrets secrets.Source
	// Getenv answers env: secret locations (embedded only); nil refuses them.
	Getenv func(string) string
	// GitBaseURL is where git_repo is cloned from ("https://github.com" when empty).
	GitBaseURL string
	// GitHubToken clones the code of runs started by GitHub events, whose jobs come from the
	// repository's .iac-ci.yml and name no git_token_location.
	GitHubToken string
	// GetObject reads an s3_location zip; nil refuses s3_location.
	GetObject func(ctx context.Context, bucket, key string) ([]byte, error)
	// WorkDir holds scratch space for cloning and copying code.
	WorkDir string
	// Parallel bounds how many orders are packaged at once (default: the number of CPUs).
	Parallel int
}

// Handle handles one intake message.
func (in *Intake) Handle(ctx context.Context, m queues.Message) error {
	var msg domain.IntakeMessage
	if err := json.Unmarshal(m.Body, &msg); err != nil || msg.RequestKey == "" {
		in.Engine.Logger().WarnContext(ctx, "dropping malformed intake message")
		return nil
	}
	req, err := in.load(ctx, msg.RequestKey)
	if errors.Is(err, blobs.ErrNotFound) {
		in.Engine.Logger().WarnContext(ctx, "intake request gone", "run_id", msg.RunID)
		return nil
	}
	if err != nil {
		return err
	}
	return in.Process(ctx, req)
}

func (in *Intake) load(ctx context.Context, key string) (domain.Request, error) {
	var req domain.Request
	data, err := in.Engine.Blobs.Get(ctx, key)
	if err != nil {
		return req, fmt.Errorf("read request: %w", err)
	}
	if err := json.Unmarshal(data, &req); err != nil {
		return req, fmt.Errorf("read request %s: %w", key, err)
	}
	return req, nil
}

// Process makes a run of a request and queues its first orders.
func (in *Intake) Process(ctx context.Context, req domain.Request) error {
	e := in.Engine
	log := e.Logger().With("run_id", req.RunID, "trace_id", req.TraceID)
	run, err := e.Store.GetRun(ctx, req.RunID)
	var orders []domain.OrderRecord
	switch {
	case err == nil && run.Status != domain.RunAccepted:
		return nil // done before
	case err == nil:
		// Created, but the process stopped before every first order was queued.
		if orders, err = e.Store.ListOrders(ctx, req.RunID); err != nil {
			return fmt.Errorf("list orders: %w", err)
		}
	case errors.Is(err, store.ErrNotFound):
		run, orders, err = in.create(ctx, req)
		if err != nil {
			return err
		}
		log.InfoContext(ctx, "run created", "orders", run.OrderCount)
	default:
		return fmt.Errorf("read run: %w", err)
	}
	crashpoint.Hit("intake.created")
	var queued, ready []domain.OrderRecord
	for _, o := range orders {
		switch {
		case o.Status == domain.OrderQueued && len(o.Deps) == 0:
			// Inserted queued (see create): sending its message is intake's part. After a crash
			// the message may have gone already; a second is harmless, since a worker claims an
			// order only from the state it expects.
			queued = append(queued, o)
		case o.Status == domain.OrderWaiting && len(o.Deps) == 0:
			// Inserted waiting, by a version that queued a run's first orders after inserting them.
			ready = append(ready, o)
		case o.Status.Terminal(): // failed at intake: its dependents may have to be skipped
			if err := e.WakeDependents(ctx, o); err != nil {
				return err
			}
		}
	}
	if err := e.SendAll(ctx, queued); err != nil {
		return err
	}
	if err := e.EnqueueAll(ctx, ready); err != nil {
		return err
	}
	crashpoint.Hit("intake.enqueued")
	if err := e.StartRun(ctx, run, req.Source); err != nil {
		return err
	}
	if run.Open > 0 {
		// Orders are open: the last of them to end finalizes the run.
		return nil
	}
	return e.FinalizeIfDone(ctx, run.RunID)
}

// create packages every order and inserts the run, and returns them as inserted. Orders whose
// code or secrets cannot be had are inserted already failed, with the reason; the others that
// wait for nothing are inserted queued, their messages not yet sent.
func (in *Intake) create(ctx context.Context, req domain.Request) (domain.Run, []domain.OrderRecord, error) {
	e := in.Engine
	job := req.Job
	records, err := domain.Plan(job, req.RunID, req.TraceID)
	if err != nil {
		return domain.Run{}, nil, fmt.Errorf("plan run: %w", err)
	}
	recipient, err := in.runKey(ctx, req.RunID)
	if err != nil {
		return domain.Run{}, nil, err
	}
	// One data key, wrapped once, for every order sealed for the run key alone (see pack).
	runSealer, err := sealing.NewSealer(recipient)
	if err != nil {
		return domain.Run{}, nil, fmt.Errorf("run key of %s: %w", req.RunID, err)
	}
	workDir, err := os.MkdirTemp(in.WorkDir, "intake-")
	if err != nil {
		return domain.Run{}, nil, fmt.Errorf("intake scratch space: %w", err)
	}
	defer os.RemoveAll(workDir)
	fetcher := &codesource.Fetcher{WorkDir: workDir, GitBaseURL: in.GitBaseURL, GetObject: in.GetObject, BaseDir: job.BaseDir}
	if fetcher.GitToken, err = in.resolve(ctx, job.GitTokenLocation); err != nil {
		return domain.Run{}, nil, fmt.Errorf("git_token_location: %w", err)
	}
	if fetcher.GitToken == "" && req.Source == "github" {
		fetcher.GitToken = in.GitHubToken
	}
	if fetcher.GitSSHKey, err = in.resolve(ctx, job.GitSSHKeyLocation); err != nil {
		return domain.Run{}, nil, fmt.Errorf("git_ssh_key_location: %w", err)
	}

	reasons := make([]string, len(records))
	bundles := &bundleWriter{bucket: e.Blobs}
	g, gctx := errgroup.WithContext(ctx)
	parallel := in.Parallel
	if parallel <= 0 {
		parallel = runtime.NumCPU()
	}
	g.SetLimit(parallel)
	for i := range records {
		g.Go(func() error {
			reason, err := in.pack(gctx, req, fetcher, job.Orders[i], records[i], runSealer, bundles)
			reasons[i] = reason
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return domain.Run{}, nil, err
	}
	if err := bundles.flush(ctx); err != nil {
		return domain.Run{}, nil, err
	}
	crashpoint.Hit("intake.bundled")

	run := e.NewRun(req, records, reasons, e.Time())
	if err := e.CreateRun(ctx, run, records); err != nil {
		return domain.Run{}, nil, err
	}
	return run, records, nil
}

// runKey returns the recipient of the run's age key, making and storing the key the first time.
// It stores a new key first and reads the stored one only when there is one (a retried or a
// racing intake of the run): every intake of a run seals with the one key stored.
func (in *Intake) runKey(ctx context.Context, runID string) (string, error) {
	k, err := sealing.NewKey()
	if err != nil {
		return "", fmt.Errorf("make run key: %w", err)
	}
	err = in.Engine.Keys.PutRunKey(ctx, runID, k.Identity)
	if err == nil {
		return k.Recipient, nil
	}
	if !errors.Is(err, secrets.ErrExists) {
		return "", fmt.Errorf("store run key: %w", err)
	}
	identity, err := in.Engine.Keys.GetRunKey(ctx, runID)
	if err != nil {
		return "", fmt.Errorf("read run key: %w", err)
	}
	id, err := age.ParseX25519Identity(identity)
	if err != nil {
		return "", fmt.Errorf("run key of %s is not an age identity", runID)
	}
	return id.Recipient().String(), nil
}

func (in *Intake) resolve(ctx context.Context, location string) (string, error) {
	if location == "" {
		return "", nil
	}
	loc, err := domain.ParseSecretLocation(location)
	if err != nil {
		return "", err
	}
	getenv := in.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	return secrets.Resolve(ctx, in.Secrets, loc, getenv)
}

// pack builds one order's bundle, sealed by runSealer (for the run key) unless the order names
// a sops_key. A problem with the order's own inputs (its code, its secrets) is returned as a
// reason, failing that order alone; an error is a problem with intake itself.
func (in *Intake) pack(ctx context.Context, req domain.Request, f *codesource.Fetcher, o domain.Order, rec domain.OrderRecord, runSealer *sealing.Sealer, out *bundleWriter) (string, error) {
	codeDir, err := f.Dir(ctx, req.Job, o)
	if err != nil {
		return "code source: " + err.Error(), nil
	}
	env := map[string]string{}
	for k, v := range o.EnvVars {
		env[k] = v
	}
	var secretNames []string
	if req.Job.NoSecrets && (len(o.SSMPaths) > 0 || len(o.SecretManagerPaths) > 0) {
		return "secrets are withheld from this run (a pull request from a fork)", nil
	}
	if !req.Job.NoSecrets {
		values, err := secrets.FetchOrderSecrets(ctx, in.Secrets, o)
		if err != nil {
			return "secrets: " + err.Error(), nil
		}
		for k, v := range values {
			env[k] = v
			secretNames = append(secretNames, k)
		}
	}
	sort.Strings(secretNames)
	for _, k := range secretNames {
		// Masking leaves values this short alone (they would mask half of any log), so such a
		// value would show in the log as it is.
		if v := env[k]; v != "" && len(v) < masking.MinLen {
			return fmt.Sprintf("secrets: the value of %s is too short to be masked in logs (under %d bytes); use a longer secret", k, masking.MinLen), nil
		}
	}
	num := domain.OrderNumString(rec.OrderNum)
	for k, v := range map[string]string{
		"TRACE_ID": req.TraceID, "RUN_ID": req.RunID, "ORDER_ID": rec.OrderName,
		"ORDER_NUM": num, "FLOW_ID": req.FlowID,
	} {
		env[k] = v
	}
	names := make([]string, 0, len(env)+1)
	for k := range env {
		names = append(names, k)
	}
	names = append(names, "CALLBACK_URL")
	sort.Strings(names)
	sealer := runSealer
	if o.SopsKey != "" {
		// Every bundle of one Sealer shares its data key: the holder of this order's sops_key
		// must get a key of its own, or they could open every other order of the run.
		if sealer, err = sealing.NewSealer(append(runSealer.Recipients(), o.SopsKey)...); err != nil {
			return "", fmt.Errorf("seal order %s: %w", rec.OrderName, err)
		}
	}
	sealed, err := sealer.Seal(env)
	if err != nil {
		return "", fmt.Errorf("seal order %s: %w", rec.OrderName, err)
	}
	m := bundle.Manifest{
		RunID: req.RunID, TraceID: req.TraceID, FlowID: req.FlowID, OrderName: rec.OrderName, QueueID: rec.QueueID,
		OrderNum: rec.OrderNum, Target: rec.Target, Cmds: o.Cmds, Timeout: o.Timeout, EnvNames: names,
		SecretNames: secretNames, SSMTargets: o.SSMTargets, SSMDocumentName: o.SSMDocumentName, CreatedAt: req.ReceivedAt,
	}
	execZip, stripped, err := bundle.Build(m, sealed, codeDir)
	if err != nil {
		return "bundle: " + err.Error(), nil
	}
	if err := out.add(ctx, blobs.Object{Key: blobs.ExecKey(req.RunID, rec.OrderNum), Body: execZip},
		blobs.Object{Key: blobs.StrippedKey(req.RunID, rec.OrderNum), Body: stripped}); err != nil {
		return "", fmt.Errorf("store bundles of %s: %w", rec.OrderName, err)
	}
	return "", nil
}

// bundleWriter stores the bundles of a run's orders in batches when the bucket takes them
// (blobs.BatchPutter): the embedded bucket writes a batch's rows in one transaction, where one
// Put each cost two transactions per order. It holds at most bundleBatch objects or
// bundleBatchBytes at a time; whatever it still holds is stored by flush, before the run is
// inserted.
type bundleWriter struct {
	bucket  blobs.Bucket
	mu      sync.Mutex
	pending []blobs.Object
	size    int
}

const (
	bundleBatch      = 100
	bundleBatchBytes = 8 << 20
)

func (w *bundleWriter) add(ctx context.Context, objs ...blobs.Object) error {
	if _, ok := w.bucket.(blobs.BatchPutter); !ok {
		// One object a call either way (S3): store them now, in this order's goroutine, so the
		// orders' uploads go on side by side.
		return blobs.PutAll(ctx, w.bucket, objs...)
	}
	w.mu.Lock()
	w.pending = append(w.pending, objs...)
	for _, o := range objs {
		w.size += len(o.Body)
	}
	var batch []blobs.Object
	if len(w.pending) >= bundleBatch || w.size >= bundleBatchBytes {
		batch, w.pending, w.size = w.pending, nil, 0
	}
	w.mu.Unlock()
	if batch == nil {
		return nil
	}
	return blobs.PutAll(ctx, w.bucket, batch...)
}

func (w *bundleWriter) flush(ctx context.Context) error {
	w.mu.Lock()
	batch := w.pending
	w.pending, w.size = nil, 0
	w.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := blobs.PutAll(ctx, w.bucket, batch...); err != nil {
		return fmt.Errorf("store bundles: %w", err)
	}
	return nil
}

// IntakeDeadLetters ends the runs whose intake kept failing: an accepted request must still reach
// a terminal state, so its run is made (if it was not) with every order failed, or, when intake
// inserted it but never started it, its orders not yet claimed are failed; then it is finalized.
// A run intake started is left to the engine.
//
// It keeps each dead letter in Book, with the last error intake saw.
type IntakeDeadLetters struct {
	Intake      *Intake
	MaxReceives int
	Book        *deadletters.Book
}

// Handle fails the run of one dead intake message.
func (d *IntakeDeadLetters) Handle(ctx context.Context, m queues.Message) error {
	e := d.Intake.Engine
	var msg domain.IntakeMessage
	if err := json.Unmarshal(m.Body, &msg); err != nil || msg.RequestKey == "" {
		return d.keep(ctx, m, deadletters.Record{Reason: "not an intake message", Outcome: "none"})
	}
	req, err := d.Intake.load(ctx, msg.RequestKey)
	if errors.Is(err, blobs.ErrNotFound) {
		return d.keep(ctx, m, deadletters.Record{RunID: msg.RunID, Outcome: "none: its request is gone"})
	}
	if err != nil {
		return err
	}
	run, err := e.Store.GetRun(ctx, req.RunID)
	if err == nil && run.Status != domain.RunAccepted {
		// Intake got as far as starting the run: the engine carries it on.
		return d.keep(ctx, m, deadletters.Record{RunID: req.RunID, Outcome: "none: intake had started the run"})
	}
	if err := d.keep(ctx, m, deadletters.Record{RunID: req.RunID, Outcome: "the run ended failed, its orders never run"}); err != nil {
		return err
	}
	reason := "intake failed repeatedly; the order was never run"
	if d.Book != nil {
		if kept, kerr := d.Book.Get(ctx, m.ID); kerr == nil && !kept.FirstFailure.IsZero() {
			reason += ": " + kept.Reason
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		records, perr := domain.Plan(req.Job, req.RunID, req.TraceID)
		if perr != nil {
			return fmt.Errorf("plan run: %w", perr)
		}
		reasons := make([]string, len(records))
		for i := range reasons {
			reasons[i] = reason
		}
		if err := e.CreateRun(ctx, e.NewRun(req, records, reasons, e.Time()), records); err != nil {
			return fmt.Errorf("insert failed run: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("read run: %w", err)
	}
	orders, err := e.Store.ListOrders(ctx, req.RunID)
	if err != nil {
		return fmt.Errorf("list orders: %w", err)
	}
	// The run was inserted but never started: its orders are waiting, or queued first orders
	// whose messages may never have been sent. Each is failed from the state it was read in, so
	// one a worker claimed in the meantime runs on and ends as it ends.
	for _, o := range orders {
		if o.Status == domain.OrderWaiting || o.Status == domain.OrderQueued {
			if _, err := e.Finish(ctx, o, []domain.OrderStatus{o.Status}, store.AnyAttempt,
				engine.Outcome{Status: domain.OrderFailed, Reason: reason}); err != nil {
				return err
			}
		}
	}
	return e.FinalizeIfDone(ctx, req.RunID)
}

// keep records the dead intake message m.
func (d *IntakeDeadLetters) keep(ctx context.Context, m queues.Message, r deadletters.Record) error {
	if d.Book == nil {
		return nil
	}
	r.ID, r.Queue, r.DeadLetterQueue = m.ID, queues.Intake, queues.Intake+queues.DeadLetterSuffix
	r.Receives, r.SentAt, r.Body = d.MaxReceives, m.SentAt, m.Body
	if !json.Valid(r.Body) {
		r.Body, _ = json.Marshal(string(m.Body))
	}
	_, err := d.Book.Keep(ctx, r)
	return err
}
