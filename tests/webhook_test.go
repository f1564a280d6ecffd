package tests

import (
	"bytes"
	"database/sql"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iac-ci/iac-ci/blobs/folderblobs"
	"github.com/iac-ci/iac-ci/internal/sqlitedb"
)

const secret = "e2e-webhook-secret"

func serveWithSecret(t *testing.T) *server {
	return startServer(t, t.TempDir(), nil, "--webhook-secret", secret)
}

const goodJob = `{"username": "caller", "orders": [
  {"order_name": "plan", "timeout": 30, "cmds": ["echo planning"]},
  {"order_name": "apply", "timeout": 30, "dependencies": ["plan"], "cmds": ["echo applying"]}
]}`

func TestWebhookSignedJobRuns(t *testing.T) {
	t.Parallel()
	s := serveWithSecret(t)
	code, body := s.post("/webhook", []byte(goodJob), secret, nil)
	if code != http.StatusAccepted {
		t.Fatalf("status %d, want 202: %v", code, body)
	}
	for _, k := range []string{"run_id", "trace_id", "flow_id", "done_endpt"} {
		if v, _ := body[k].(string); v == "" {
			t.Errorf("answer lacks %s: %v", k, body)
		}
	}
	v := s.waitRun(body["run_id"].(string), time.Minute)
	if v.Status != "succeeded" {
		t.Fatalf("run %s: %+v", v.Status, v.Orders)
	}
	// The history has every move of every order, in the order they happened.
	moves := map[string][]string{}
	var order []string
	for _, e := range s.history(v.RunID) {
		if e.Type == "order_state" {
			moves[e.OrderName] = append(moves[e.OrderName], e.Status+" "+e.Details)
			order = append(order, e.OrderName+" "+e.Status)
		}
	}
	for _, name := range []string{"plan", "apply"} {
		if got, want := strings.Join(moves[name], ", "), "queued , running attempt 1, succeeded "; got != want {
			t.Errorf("history of %s: got %q, want %q", name, got, want)
		}
	}
	if got := strings.Join(order, ", "); !strings.HasPrefix(got, "plan queued, plan running, plan succeeded, apply queued") {
		t.Errorf("history out of order: %s", got)
	}
	resp, err := get(body["done_endpt"].(string))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("done endpoint answered %d", resp.StatusCode)
	}
}

func TestWebhookEnvelopeAndYAML(t *testing.T) {
	t.Parallel()
	s := serveWithSecret(t)
	env := `{"job_parameters_b64": "` + base64.StdEncoding.EncodeToString([]byte(goodJob)) + `", "trace_id": "abc123", "run_id": "caller-run-1"}`
	code, body := s.post("/webhook", []byte(env), secret, nil)
	if code != http.StatusAccepted || body["run_id"] != "caller-run-1" || body["trace_id"] != "abc123" {
		t.Fatalf("envelope: %d %v", code, body)
	}
	yaml := "username: caller\norders:\n  - order_name: one\n    timeout: 30\n    cmds: [\"true\"]\n"
	code, body = s.post("/webhook", []byte(yaml), secret, nil)
	if code != http.StatusAccepted {
		t.Fatalf("yaml: %d %v", code, body)
	}
	if v := s.waitRun(body["run_id"].(string), time.Minute); v.Status != "succeeded" {
		t.Fatalf("yaml run %s", v.Status)
	}
	if v := s.waitRun("caller-run-1", time.Minute); v.Status != "succeeded" {
		t.Fatalf("envelope run %s", v.Status)
	}
}

// requireNothingStored stops the server and checks that its data folder holds no request (as
// a file or as a row of the blob table, in queues.db), no run (iac-ci.db) and no queued
// message (queues.db).
func requireNothingStored(t *testing.T, s *server) {
	t.Helper()
	s.stop()
	reqs, _ := filepath.Glob(filepath.Join(s.data, "blobs", "internal", "requests", "*"))
	if len(reqs) > 0 {
		t.Errorf("requests stored: %v", reqs)
	}
	db, err := sqlitedb.Open(filepath.Join(s.data, "queues.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stateDB, err := sqlitedb.Open(filepath.Join(s.data, "iac-ci.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer stateDB.Close()
	// The server made the table when it opened its buckets, so an empty one means nothing was
	// stored rather than nowhere to look.
	rows, err := db.Query("SELECT bucket, key FROM " + folderblobs.Table)
	if err != nil {
		t.Fatalf("read the blob table: %v", err)
	}
	for rows.Next() {
		var bucket, key string
		if err := rows.Scan(&bucket, &key); err != nil {
			t.Fatal(err)
		}
		t.Errorf("object stored in the blob table: %s/%s", bucket, key)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	for _, table := range tablesLike(t, db, "queue_%") {
		var n int
		if err := db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 && strings.Contains(table, "message") {
			t.Errorf("%d rows in %s", n, table)
		}
	}
	for _, table := range tablesLike(t, stateDB, "store_%") {
		var n int
		if err := stateDB.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			t.Errorf("%d rows in %s", n, table)
		}
	}
}

func tablesLike(t *testing.T, db *sql.DB, pattern string) []string {
	t.Helper()
	rows, err := db.Query("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ?", pattern)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		t.Fatalf("no tables like %s: the check would prove nothing", pattern)
	}
	return out
}

func TestWebhookRejectsBadSignature(t *testing.T) {
	t.Parallel()
	s := serveWithSecret(t)
	if code, body := s.post("/webhook", []byte(goodJob), "", nil); code != http.StatusUnauthorized {
		t.Errorf("missing signature: %d %v", code, body)
	}
	if code, body := s.post("/webhook", []byte(goodJob), "another-secret", nil); code != http.StatusUnauthorized {
		t.Errorf("wrong signature: %d %v", code, body)
	}
	if code, _ := s.post("/ssm", []byte(goodJob), "", nil); code != http.StatusUnauthorized {
		t.Errorf("ssm, missing signature: %d", code)
	}
	requireNothingStored(t, s)
}

func TestWebhookRejectsInvalidJobListingEveryProblem(t *testing.T) {
	t.Parallel()
	s := serveWithSecret(t)
	bad := `{"orders": [
	  {"order_name": "a", "timeout": 1200, "execution_target": "lambda", "cmds": ["true"], "dependencies": ["ghost"]},
	  {"order_name": "b", "timeout": 0, "cmds": ["true"], "dependencies": ["b"]}
	]}`
	code, body := s.post("/webhook", []byte(bad), secret, nil)
	if code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400: %v", code, body)
	}
	problems, _ := body["problems"].([]any)
	paths := map[string]bool{}
	for _, p := range problems {
		m := p.(map[string]any)
		paths[m["path"].(string)] = true
	}
	for _, want := range []string{"username", "orders[0].timeout", "orders[0].dependencies[0]", "orders[1].timeout", "orders[1].dependencies[0]"} {
		if !paths[want] {
			t.Errorf("no problem at %s; got %v", want, problems)
		}
	}
	requireNothingStored(t, s)
}

// A typo no longer hides the rest: a job with an unknown field, a cycle and a timeout over its
// target's limit is answered with all three problems, in one 400.
func TestWebhookUnknownFieldHidesNoOtherProblem(t *testing.T) {
	t.Parallel()
	s := serveWithSecret(t)
	bad := `{"username": "newcomer", "orders": [
	  {"order_name": "a", "timeout": 1200, "execution_target": "lambda", "cmds": ["true"], "dependencies": ["b"]},
	  {"order_name": "b", "timeout": 60, "cmds": ["true"], "dependencies": ["a"], "enviroment": {"X": "1"}}
	]}`
	code, body := s.post("/webhook", []byte(bad), secret, nil)
	if code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400: %v", code, body)
	}
	problems, _ := body["problems"].([]any)
	found := map[string]string{}
	for _, p := range problems {
		m := p.(map[string]any)
		found[m["path"].(string)] = m["message"].(string)
	}
	for path, fragment := range map[string]string{
		"orders[1].enviroment": "unknown field",
		"orders":               "dependency cycle a -> b -> a",
		"orders[0].timeout":    "1200 exceeds the lambda limit of 840",
	} {
		if !strings.Contains(found[path], fragment) {
			t.Errorf("no problem at %s containing %q; got %v", path, fragment, problems)
		}
	}
	if len(problems) != 3 {
		t.Errorf("got %d problems, want the 3: %v", len(problems), problems)
	}
	requireNothingStored(t, s)
}

func TestWebhookLimitsAndMethods(t *testing.T) {
	t.Parallel()
	s := serveWithSecret(t)
	big := bytes.Repeat([]byte("x"), 2<<20)
	if code, _ := s.post("/webhook", big, secret, nil); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d, want 413", code)
	}
	resp, err := http.Get(s.url + "/webhook")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /webhook: %d, want 405", resp.StatusCode)
	}
	resp, err = get(s.url + "/runs/no-such-run")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown run: %d, want 404", resp.StatusCode)
	}
	requireNothingStored(t, s)
}

func TestSSMEndpointRunsSSMJob(t *testing.T) {
	t.Parallel()
	s := serveWithSecret(t)
	job := `{"username": "ops", "orders": [{"order_name": "patch", "timeout": 30, "cmds": ["echo patched"],
	  "ssm_targets": {"instance_ids": ["i-0123456789abcdef0"]}}]}`
	code, body := s.post("/ssm", []byte(job), secret, nil)
	if code != http.StatusAccepted {
		t.Fatalf("status %d: %v", code, body)
	}
	if !strings.HasSuffix(body["flow_id"].(string), "-ssm") {
		t.Errorf("flow_id %v, want the ssm flow label", body["flow_id"])
	}
	v := s.waitRun(body["run_id"].(string), time.Minute)
	if v.Status != "succeeded" || v.Orders[0].Target != "ssm" {
		t.Fatalf("run %+v", v)
	}
}

func TestServeRefusesToStartWithoutSecret(t *testing.T) {
	t.Parallel()
	r := iacci(t, []string{"IAC_CI_WEBHOOK_SECRET="}, "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir())
	if r.code != 2 || !strings.Contains(r.stderr, "IAC_CI_WEBHOOK_SECRET") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(repoRoot, ".iac-ci")); err == nil {
		t.Log("note: a ./.iac-ci folder exists in the repository (from a manual serve)")
	}
}

func TestServeRefusesToStartWithoutAPIToken(t *testing.T) {
	t.Parallel()
	r := iacci(t, []string{"IAC_CI_API_TOKEN="}, "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--webhook-secret", secret)
	if r.code != 2 || !strings.Contains(r.stderr, "--api-token") || !strings.Contains(r.stderr, "IAC_CI_API_TOKEN") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
}

// The read routes of a running server answer 401 without the API token and 200 with it; the
// same signed body posted again starts no second run.
func TestServeReadsNeedTheTokenAndReplaysStartNothing(t *testing.T) {
	t.Parallel()
	s := serveWithSecret(t)
	code, body := s.post("/webhook", []byte(goodJob), secret, nil)
	if code != http.StatusAccepted {
		t.Fatalf("status %d, want 202: %v", code, body)
	}
	runID := body["run_id"].(string)
	for _, path := range []string{"/runs/" + runID, "/runs/" + runID + "/events", "/done/" + runID} {
		resp, err := http.Get(s.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d, want 401", path, resp.StatusCode)
		}
	}
	s.waitRun(runID, time.Minute)
	code, again := s.post("/webhook", []byte(goodJob), secret, nil)
	if code != http.StatusAccepted || again["run_id"] != runID || again["duplicate"] != true {
		t.Fatalf("replay: %d %v, want 202 naming run %s as a duplicate", code, again, runID)
	}
	// A run starts from a stored request: the replay, answered, stored none.
	s.stop()
	files, _ := filepath.Glob(filepath.Join(s.data, "blobs", "internal", "requests", "*"))
	db, err := sqlitedb.Open(filepath.Join(s.data, "queues.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows int
	if err := db.QueryRow("SELECT count(*) FROM " + folderblobs.Table + " WHERE key LIKE 'requests/%'").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if len(files)+rows != 1 {
		t.Errorf("%d requests stored (%v and %d rows), want 1: the replay started another run", len(files)+rows, files, rows)
	}
	stateDB, err := sqlitedb.Open(filepath.Join(s.data, "iac-ci.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer stateDB.Close()
	var runs int
	if err := stateDB.QueryRow("SELECT count(*) FROM store_runs").Scan(&runs); err != nil {
		t.Fatal(err)
	}
	if runs != 1 {
		t.Errorf("%d runs stored, want 1", runs)
	}
}

// Deleting the database under a running server makes it refuse jobs (503) and fail /healthz,
// where it used to accept them into a file nobody would read again.
func TestServeNoticesItsDatabaseGone(t *testing.T) {
	t.Parallel()
	s := serveWithSecret(t)
	if err := os.Remove(filepath.Join(s.data, "iac-ci.db")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(s.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	health, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(health), "iac-ci.db") {
		t.Errorf("/healthz: %d %s, want 503 naming the database", resp.StatusCode, health)
	}
	for _, path := range []string{"/webhook", "/ssm"} {
		if code, body := s.post(path, []byte(goodJob), secret, nil); code != http.StatusServiceUnavailable {
			t.Errorf("POST %s: %d %v, want 503", path, code, body)
		}
	}
}
