package producers_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getsops/sops/v3/decrypt"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/blobs/folderblobs"
	"github.com/iac-ci/iac-ci/bundle"
	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/engine"
	"github.com/iac-ci/iac-ci/internal/sqlitedb/sqlitedbtest"
	"github.com/iac-ci/iac-ci/producers"
	"github.com/iac-ci/iac-ci/queues"
	"github.com/iac-ci/iac-ci/queues/sqlitequeue"
	"github.com/iac-ci/iac-ci/sealing"
	"github.com/iac-ci/iac-ci/secrets/localsecrets"
)

// Values of the local secrets file every intake test reads.
const (
	dbPassword = "intake-db-password-5f1c2e"
	apiToken   = "intake-api-token-93ab70d4"
	// shortSecret is too short for masking to hide (masking.MinLen).
	shortSecret = "q!"
)

// intakeSetup is an intake on the embedded adapters, all in one temporary folder.
type intakeSetup struct {
	dir      string
	engine   *engine.Engine
	intake   *producers.Intake
	accepter *producers.Accepter
	broker   *sqlitequeue.Broker
}

func setupIntake(t *testing.T) intakeSetup {
	t.Helper()
	dir := t.TempDir()
	db := sqlitedbtest.Open(t, dir)
	broker, st := sqlitedbtest.Ports(t, db)
	baseURL := func() string { return "http://127.0.0.1:1" }
	internal, err := folderblobs.New(filepath.Join(dir, "blobs"), "internal", folderblobs.Options{BaseURL: baseURL})
	if err != nil {
		t.Fatal(err)
	}
	done, err := folderblobs.New(filepath.Join(dir, "blobs"), "done", folderblobs.Options{BaseURL: baseURL})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := localsecrets.NewKeys(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	secretsFile := filepath.Join(dir, "secrets.json")
	values, _ := json.Marshal(map[string]string{"/team/db-password": dbPassword, "deploy/api-token": apiToken, "/team/pin": shortSecret})
	if err := os.WriteFile(secretsFile, values, 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := localsecrets.LoadSource(secretsFile)
	if err != nil {
		t.Fatal(err)
	}
	e := &engine.Engine{Store: st, Queues: broker, Blobs: internal, Done: done, Keys: keys}
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		t.Fatal(err)
	}
	return intakeSetup{
		dir: dir, engine: e, broker: broker,
		intake:   &producers.Intake{Engine: e, Secrets: src, WorkDir: work, Parallel: 2},
		accepter: &producers.Accepter{Blobs: internal, Queues: broker, Embedded: true},
	}
}

// accept accepts a job as a producer would and returns the intake message it queued.
func (s intakeSetup) accept(t *testing.T, job string, noSecrets bool) (producers.Accepted, queues.Message) {
	t.Helper()
	j, env, err := domain.DecodeJob([]byte(job))
	if err != nil {
		t.Fatalf("DecodeJob: %v", err)
	}
	j.NoSecrets = noSecrets
	acc, err := s.accepter.Accept(t.Context(), producers.Submission{Job: j, Envelope: env, Source: "webhook"})
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	msgs := s.receive(t, queues.Intake)
	if len(msgs) != 1 {
		t.Fatalf("%d intake messages, want 1", len(msgs))
	}
	return acc, msgs[0]
}

// run accepts a job and hands its intake message to intake, as the intake consumer would.
func (s intakeSetup) run(t *testing.T, job string, noSecrets bool) producers.Accepted {
	t.Helper()
	acc, msg := s.accept(t, job, noSecrets)
	if err := s.intake.Handle(t.Context(), msg); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	return acc
}

// receive takes every visible message off a queue.
func (s intakeSetup) receive(t *testing.T, name string) []queues.Message {
	t.Helper()
	q, err := s.broker.Queue(name)
	if err != nil {
		t.Fatal(err)
	}
	var all []queues.Message
	for {
		msgs, err := q.Receive(t.Context(), queues.ReceiveOptions{Max: queues.MaxBatch})
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			return all
		}
		all = append(all, msgs...)
	}
}

func (s intakeSetup) orders(t *testing.T, runID string) map[string]domain.OrderRecord {
	t.Helper()
	list, err := s.engine.Store.ListOrders(t.Context(), runID)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]domain.OrderRecord{}
	for _, o := range list {
		m[o.OrderName] = o
	}
	return m
}

func (s intakeSetup) blob(t *testing.T, key string) []byte {
	t.Helper()
	b, err := s.engine.Blobs.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("blob %s: %v", key, err)
	}
	return b
}

func (s intakeSetup) runKey(t *testing.T, runID string) string {
	t.Helper()
	k, err := s.engine.Keys.GetRunKey(t.Context(), runID)
	if err != nil {
		t.Fatalf("run key: %v", err)
	}
	return k
}

// orderNums decodes order messages and returns their order numbers, sorted.
func orderNums(t *testing.T, runID string, msgs []queues.Message) []int {
	t.Helper()
	var nums []int
	for _, m := range msgs {
		var om domain.OrderMessage
		if err := json.Unmarshal(m.Body, &om); err != nil {
			t.Fatalf("order message %s: %v", m.Body, err)
		}
		if om.RunID != runID {
			t.Errorf("order message for run %s, want %s", om.RunID, runID)
		}
		for _, v := range []string{dbPassword, apiToken} {
			if bytes.Contains(m.Body, []byte(v)) {
				t.Errorf("order message holds a secret value: %s", m.Body)
			}
		}
		nums = append(nums, om.OrderNum)
	}
	slices.Sort(nums)
	return nums
}

const diamondJob = `{"username": "tester", "orders": [
  {"order_name": "plan", "timeout": 60, "cmds": ["echo plan"], "ssm_paths": ["/team/db-password"],
   "secret_manager_paths": ["deploy/api-token"], "env_vars": {"TF_VAR_region": "eu-west-1"}},
  {"order_name": "lint", "timeout": 60, "cmds": ["echo lint"]},
  {"order_name": "test", "timeout": 60, "cmds": ["echo test"], "dependencies": ["plan"]},
  {"order_name": "apply", "timeout": 60, "cmds": ["echo apply"], "dependencies": ["lint", "test"]}
]}`

func TestIntakeCreatesRunAndQueuesReadyOrdersOnce(t *testing.T) {
	t.Parallel()
	s := setupIntake(t)
	acc, msg := s.accept(t, diamondJob, false)
	if err := s.intake.Handle(t.Context(), msg); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	run, err := s.engine.Store.GetRun(t.Context(), acc.RunID)
	if err != nil {
		t.Fatalf("GetRun: %v", err)
	}
	if run.Status != domain.RunRunning || run.OrderCount != 4 || run.Open != 4 || run.TraceID != acc.TraceID {
		t.Fatalf("run %+v, want running with 4 open orders", run)
	}
	want := map[string]domain.OrderStatus{"plan": domain.OrderQueued, "lint": domain.OrderQueued,
		"test": domain.OrderWaiting, "apply": domain.OrderWaiting}
	orders := s.orders(t, acc.RunID)
	for name, st := range want {
		if got := orders[name].Status; got != st {
			t.Errorf("order %s: got %s, want %s", name, got, st)
		}
	}
	queueName := queues.Orders(string(domain.DefaultTarget))
	if got, wantNums := orderNums(t, acc.RunID, s.receive(t, queueName)), []int{1, 2}; !slices.Equal(got, wantNums) {
		t.Fatalf("queued orders %v, want %v", got, wantNums)
	}
	for _, o := range orders {
		s.blob(t, blobs.ExecKey(acc.RunID, o.OrderNum))
		s.blob(t, blobs.StrippedKey(acc.RunID, o.OrderNum))
	}
	key := s.runKey(t, acc.RunID)
	info, err := os.Stat(filepath.Join(s.dir, "keys", acc.RunID+".key"))
	if err != nil {
		t.Fatalf("key file: %v", err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %04o, want 0600", perm)
	}
	events, err := s.engine.Store.ListEvents(t.Context(), acc.TraceID)
	if err != nil {
		t.Fatal(err)
	}
	bundles := map[string][]byte{}
	for _, o := range orders {
		bundles[o.OrderName] = s.blob(t, blobs.ExecKey(acc.RunID, o.OrderNum))
	}

	// The same request again, as a redelivered intake message would bring it.
	if err := s.intake.Handle(t.Context(), msg); err != nil {
		t.Fatalf("second Handle: %v", err)
	}
	if got := s.receive(t, queueName); len(got) != 0 {
		t.Errorf("the second intake queued %d more order messages", len(got))
	}
	if got := s.runKey(t, acc.RunID); got != key {
		t.Errorf("the second intake replaced the run key")
	}
	again, err := s.engine.Store.GetRun(t.Context(), acc.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if again != run {
		t.Errorf("run changed:\n got %+v\nwant %+v", again, run)
	}
	for name, o := range s.orders(t, acc.RunID) {
		if o.Status != orders[name].Status || o.Attempt != orders[name].Attempt {
			t.Errorf("order %s moved from %s to %s", name, orders[name].Status, o.Status)
		}
		if !bytes.Equal(s.blob(t, blobs.ExecKey(acc.RunID, o.OrderNum)), bundles[name]) {
			t.Errorf("order %s was sealed again", name)
		}
	}
	if after, _ := s.engine.Store.ListEvents(t.Context(), acc.TraceID); len(after) != len(events) {
		t.Errorf("%d events after the second intake, want %d", len(after), len(events))
	}
}

func TestIntakeSealsBundleForTheRunKey(t *testing.T) {
	t.Parallel()
	s := setupIntake(t)
	acc := s.run(t, diamondJob, false)
	execZip := s.blob(t, blobs.ExecKey(acc.RunID, 1))
	m, sealed, err := bundle.Unpack(execZip, t.TempDir(), bundle.DefaultLimits)
	if err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	env, err := sealing.Open(sealed, s.runKey(t, acc.RunID))
	if err != nil {
		t.Fatalf("Open with the run key: %v", err)
	}
	want := map[string]string{
		"DB_PASSWORD": dbPassword, "API_TOKEN": apiToken, "TF_VAR_region": "eu-west-1",
		"RUN_ID": acc.RunID, "TRACE_ID": acc.TraceID, "FLOW_ID": acc.FlowID,
		"ORDER_NUM": "0001", "ORDER_ID": "plan", // as in the system iac-ci replaces: the order_name
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("sealed %s: got %q, want %q", k, env[k], v)
		}
	}
	if len(env) != len(want) {
		t.Errorf("sealed %d variables, want %d", len(env), len(want))
	}
	if got, w := m.SecretNames, []string{"API_TOKEN", "DB_PASSWORD"}; !slices.Equal(got, w) {
		t.Errorf("manifest SecretNames %v, want %v", got, w)
	}
	if !slices.Contains(m.EnvNames, "CALLBACK_URL") || !slices.Contains(m.EnvNames, "DB_PASSWORD") {
		t.Errorf("manifest EnvNames %v lacks CALLBACK_URL or DB_PASSWORD", m.EnvNames)
	}
	other, err := sealing.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sealing.Open(sealed, other.Identity); !errors.Is(err, sealing.ErrWrongKey) {
		t.Errorf("Open with another key: got %v, want ErrWrongKey", err)
	}

	// Neither zip holds a value, raw or inside an entry; stripped.zip has no sealed file.
	stripped := s.blob(t, blobs.StrippedKey(acc.RunID, 1))
	for name, data := range map[string][]byte{"exec.zip": execZip, "stripped.zip": stripped} {
		entries := zipEntries(t, data)
		_, hasSealed := entries[bundle.SealedName]
		if hasSealed != (name == "exec.zip") {
			t.Errorf("%s: has %s: %v", name, bundle.SealedName, hasSealed)
		}
		entries[""] = data
		for entry, body := range entries {
			for _, v := range []string{dbPassword, apiToken} {
				if bytes.Contains(body, []byte(v)) {
					t.Errorf("%s entry %q holds a secret value", name, entry)
				}
			}
		}
	}
}

// TestIntakeSealedBundleOpensWithSops opens a bundle with sops's own decrypt, as `sops -d` would
// with SOPS_AGE_KEY set to the run key. It sets a process variable, so it does not run in
// parallel.
func TestIntakeSealedBundleOpensWithSops(t *testing.T) {
	s := setupIntake(t)
	acc := s.run(t, diamondJob, false)
	sealed := zipEntries(t, s.blob(t, blobs.ExecKey(acc.RunID, 1)))[bundle.SealedName]
	t.Setenv("SOPS_AGE_KEY", s.runKey(t, acc.RunID))
	plain, err := decrypt.Data(sealed, "json")
	if err != nil {
		t.Fatalf("sops decrypt: %v", err)
	}
	var env map[string]string
	if err := json.Unmarshal(plain, &env); err != nil {
		t.Fatalf("decrypted document: %v", err)
	}
	if env["DB_PASSWORD"] != dbPassword || env["API_TOKEN"] != apiToken || env["RUN_ID"] != acc.RunID {
		t.Fatalf("sops decrypted %d variables without the expected values", len(env))
	}
}

func TestIntakeMissingSecretFailsOnlyItsOrder(t *testing.T) {
	t.Parallel()
	s := setupIntake(t)
	job := `{"username": "tester", "orders": [
	  {"order_name": "plan", "timeout": 60, "cmds": ["echo plan"], "ssm_paths": ["/team/db-password", "/team/no-such-secret"]},
	  {"order_name": "apply", "timeout": 60, "cmds": ["echo apply"], "dependencies": ["plan"]},
	  {"order_name": "notify", "timeout": 60, "cmds": ["echo notify"], "dependencies": ["apply"]},
	  {"order_name": "lint", "timeout": 60, "cmds": ["echo lint"], "secret_manager_paths": ["deploy/api-token"]}
	]}`
	acc := s.run(t, job, false)
	orders := s.orders(t, acc.RunID)
	plan := orders["plan"]
	if plan.Status != domain.OrderFailed || plan.ExitCode == nil || *plan.ExitCode != -1 {
		t.Fatalf("plan: %s exit %v, want failed exit -1", plan.Status, plan.ExitCode)
	}
	for _, want := range []string{"ssm_paths[1]", "/team/no-such-secret"} {
		if !strings.Contains(plan.Reason, want) {
			t.Errorf("plan's reason %q does not name %q", plan.Reason, want)
		}
	}
	for _, v := range []string{dbPassword, apiToken} {
		if strings.Contains(plan.Reason, v) {
			t.Errorf("plan's reason holds a secret value: %q", plan.Reason)
		}
	}
	// Dependents are skipped at once, not left for the sweeper.
	for _, name := range []string{"apply", "notify"} {
		if o := orders[name]; o.Status != domain.OrderSkipped {
			t.Errorf("%s: got %s, want skipped", name, o.Status)
		}
	}
	if o := orders["lint"]; o.Status != domain.OrderQueued {
		t.Errorf("lint: got %s, want queued", o.Status)
	}
	if got := orderNums(t, acc.RunID, s.receive(t, queues.Orders(string(domain.DefaultTarget)))); !slices.Equal(got, []int{4}) {
		t.Errorf("queued orders %v, want [4]", got)
	}
	run, err := s.engine.Store.GetRun(t.Context(), acc.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != domain.RunRunning || run.Open != 1 {
		t.Errorf("run %s with %d open orders, want running with 1", run.Status, run.Open)
	}
	// The failed order was never sealed.
	if _, err := s.engine.Blobs.Get(t.Context(), blobs.ExecKey(acc.RunID, plan.OrderNum)); !errors.Is(err, blobs.ErrNotFound) {
		t.Errorf("exec.zip of the failed order: got %v, want ErrNotFound", err)
	}
}

func TestIntakeForkRunWithholdsSecrets(t *testing.T) {
	t.Parallel()
	s := setupIntake(t)
	job := `{"username": "tester", "orders": [
	  {"order_name": "plan", "timeout": 60, "cmds": ["echo plan"], "ssm_paths": ["/team/db-password"]},
	  {"order_name": "lint", "timeout": 60, "cmds": ["echo lint"], "env_vars": {"LEVEL": "strict"}}
	]}`
	acc := s.run(t, job, true)
	orders := s.orders(t, acc.RunID)
	if o := orders["plan"]; o.Status != domain.OrderFailed || !strings.Contains(o.Reason, "withheld") {
		t.Errorf("plan: %s %q, want failed with a reason saying secrets are withheld", o.Status, o.Reason)
	}
	lint := orders["lint"]
	if lint.Status != domain.OrderQueued {
		t.Fatalf("lint: got %s, want queued", lint.Status)
	}
	_, sealed, err := bundle.Unpack(s.blob(t, blobs.ExecKey(acc.RunID, lint.OrderNum)), t.TempDir(), bundle.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	env, err := sealing.Open(sealed, s.runKey(t, acc.RunID))
	if err != nil {
		t.Fatal(err)
	}
	if env["LEVEL"] != "strict" || env["DB_PASSWORD"] != "" {
		t.Errorf("lint's sealed environment: LEVEL=%q, DB_PASSWORD set: %v", env["LEVEL"], env["DB_PASSWORD"] != "")
	}
}

func TestIntakeWithoutSecretsFileFailsOrderSayingHow(t *testing.T) {
	t.Parallel()
	s := setupIntake(t)
	s.intake.Secrets, _ = localsecrets.LoadSource("") // as when --secrets is not given
	acc := s.run(t, diamondJob, false)
	plan := s.orders(t, acc.RunID)["plan"]
	if plan.Status != domain.OrderFailed || !strings.Contains(plan.Reason, "--secrets") {
		t.Errorf("plan: %s %q, want failed with a reason saying to pass --secrets", plan.Status, plan.Reason)
	}
}

// zipEntries returns every entry of a zip, decompressed.
func zipEntries(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("zip: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatalf("zip entry %s: %v", f.Name, err)
		}
		b, err := io.ReadAll(io.LimitReader(rc, 64<<20))
		rc.Close()
		if err != nil {
			t.Fatalf("zip entry %s: %v", f.Name, err)
		}
		out[f.Name] = b
	}
	return out
}

// A value too short to be masked would show in the log in plain text, so its order is refused.
func TestIntakeRefusesSecretTooShortToMask(t *testing.T) {
	t.Parallel()
	s := setupIntake(t)
	job := `{"username": "tester", "orders": [
	  {"order_name": "plan", "timeout": 60, "cmds": ["echo \"pin=$PIN\""], "ssm_paths": ["/team/pin"]},
	  {"order_name": "lint", "timeout": 60, "cmds": ["echo lint"], "ssm_paths": ["/team/db-password"]}
	]}`
	acc := s.run(t, job, false)
	orders := s.orders(t, acc.RunID)
	plan := orders["plan"]
	if plan.Status != domain.OrderFailed || !strings.Contains(plan.Reason, "PIN") || !strings.Contains(plan.Reason, "too short") {
		t.Errorf("plan: %s %q, want failed with a reason naming PIN as too short to mask", plan.Status, plan.Reason)
	}
	if strings.Contains(plan.Reason, shortSecret) {
		t.Errorf("plan's reason holds the value: %q", plan.Reason)
	}
	if o := orders["lint"]; o.Status != domain.OrderQueued {
		t.Errorf("lint: got %s, want queued", o.Status)
	}
}

// An intake message that died ends its run: a run intake inserted with its first orders queued
// but never started has those and the waiting ones failed, and is finalized; a run intake
// started is left alone.
func TestIntakeDeadLettersEndRunsIntakeNeverStarted(t *testing.T) {
	t.Parallel()
	s := setupIntake(t)
	ctx := t.Context()
	dead := &producers.IntakeDeadLetters{Intake: s.intake}

	// Inserted as intake inserts it, then intake stopped before starting the run.
	acc, msg := s.accept(t, diamondJob, false)
	var req domain.Request
	if err := json.Unmarshal(s.blob(t, blobs.RequestKey(acc.RunID)), &req); err != nil {
		t.Fatal(err)
	}
	records, err := domain.Plan(req.Job, req.RunID, req.TraceID)
	if err != nil {
		t.Fatal(err)
	}
	now := s.engine.Time()
	events := s.engine.QueueFirst(records, now)
	run := domain.Run{RunID: req.RunID, TraceID: req.TraceID, Status: domain.RunAccepted, OrderCount: len(records),
		Open: len(records), CreatedAt: now, Deadline: now.Add(time.Hour)}
	if err := s.engine.Store.CreateRun(ctx, run, records, events...); err != nil {
		t.Fatal(err)
	}
	if err := dead.Handle(ctx, msg); err != nil {
		t.Fatalf("dead letter: %v", err)
	}
	for name, o := range s.orders(t, acc.RunID) {
		switch {
		case (name == "plan" || name == "lint") && (o.Status != domain.OrderFailed || !strings.Contains(o.Reason, "intake failed")):
			t.Errorf("queued order %s: %s (%q), want failed by the dead letter", name, o.Status, o.Reason)
		case !o.Status.Terminal():
			t.Errorf("order %s: %s, want it ended (failed, or skipped for a failed dependency)", name, o.Status)
		}
	}
	if got, err := s.engine.Store.GetRun(ctx, acc.RunID); err != nil || got.Status != domain.RunFailed {
		t.Errorf("run: %s, %v; want failed", got.Status, err)
	}

	// Started by intake: the dead letter changes nothing.
	acc2, msg2 := s.accept(t, diamondJob, false)
	if err := s.intake.Handle(ctx, msg2); err != nil {
		t.Fatalf("intake: %v", err)
	}
	before := s.orders(t, acc2.RunID)
	if err := dead.Handle(ctx, msg2); err != nil {
		t.Fatalf("dead letter: %v", err)
	}
	for name, o := range s.orders(t, acc2.RunID) {
		if o.Status != before[name].Status {
			t.Errorf("order %s of a started run: %s -> %s, want it left alone", name, before[name].Status, o.Status)
		}
	}
}

// countingBucket counts the puts of a bucket that takes batches.
type countingBucket struct {
	*folderblobs.Bucket
	mu            sync.Mutex
	puts, batches int
	largest       int
}

func (b *countingBucket) Put(ctx context.Context, key string, body []byte) error {
	b.mu.Lock()
	b.puts++
	b.mu.Unlock()
	return b.Bucket.Put(ctx, key, body)
}

func (b *countingBucket) PutBatch(ctx context.Context, objs []blobs.Object) error {
	b.mu.Lock()
	b.batches++
	b.largest = max(b.largest, len(objs))
	b.mu.Unlock()
	return b.Bucket.PutBatch(ctx, objs)
}

// Intake stores a run's bundles in batches when the bucket takes them: 250 orders' 500 bundles
// in a handful of batches of at most 100, not 500 puts.
func TestIntakeStoresBundlesInBatches(t *testing.T) {
	t.Parallel()
	s := setupIntake(t)
	counting := &countingBucket{Bucket: s.engine.Blobs.(*folderblobs.Bucket)}
	s.engine.Blobs = counting
	var orders []string
	for i := range 250 {
		orders = append(orders, fmt.Sprintf(`{"order_name": "o%03d", "timeout": 60, "cmds": ["true"]}`, i))
	}
	acc := s.run(t, `{"username": "tester", "orders": [`+strings.Join(orders, ",")+`]}`, false)
	for o := range 250 {
		s.blob(t, blobs.ExecKey(acc.RunID, o+1))
		s.blob(t, blobs.StrippedKey(acc.RunID, o+1))
	}
	if counting.puts != 0 || counting.batches < 5 || counting.batches > 6 || counting.largest > 101 {
		t.Errorf("%d puts and %d batches (largest %d objects), want the 500 bundles in 5 or 6 batches of at most ~100",
			counting.puts, counting.batches, counting.largest)
	}
}

// An intake that finds the run's key stored (by an earlier try, or a racing one) seals with that
// key and leaves it in place.
func TestIntakeSealsWithAKeyStoredBefore(t *testing.T) {
	t.Parallel()
	s := setupIntake(t)
	acc, msg := s.accept(t, diamondJob, false)
	stored, err := sealing.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.engine.Keys.PutRunKey(t.Context(), acc.RunID, stored.Identity); err != nil {
		t.Fatal(err)
	}
	if err := s.intake.Handle(t.Context(), msg); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if got := s.runKey(t, acc.RunID); got != stored.Identity {
		t.Fatalf("intake replaced the stored run key")
	}
	_, sealed, err := bundle.Unpack(s.blob(t, blobs.ExecKey(acc.RunID, 1)), t.TempDir(), bundle.DefaultLimits)
	if err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	if _, err := sealing.Open(sealed, stored.Identity); err != nil {
		t.Fatalf("Open with the key stored before intake: %v", err)
	}
}
