package tests

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/getsops/sops/v3/decrypt"

	"github.com/iac-ci/iac-ci/blobs"
	"github.com/iac-ci/iac-ci/blobs/folderblobs"
	"github.com/iac-ci/iac-ci/bundle"
	"github.com/iac-ci/iac-ci/internal/sqlitedb"
	"github.com/iac-ci/iac-ci/store/sqlitestore"
)

// The values of the local secrets file. A job names only their paths; the commands check them
// against their SHA-256, so no value is ever part of a job, a command or a manifest.
const (
	e2eDBPassword = "e2e-db-password-c0ffee-41d2"
	e2eAPIToken   = "e2e-api-token-7f3b9a0e51"
)

var secretValues = []string{e2eDBPassword, e2eAPIToken}

// writeSecretsFile writes the local secrets file with the given mode.
func writeSecretsFile(t *testing.T, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secrets.json")
	body, err := json.Marshal(map[string]string{"/team/db-password": e2eDBPassword, "deploy/api-token": e2eAPIToken})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return path
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// secretCommands prove that the order sees both values, then print them every way the log
// must mask: plainly, on stderr, and one value split across two writes. The log is made longer
// than a result's tail, so that it is stored as an object of its own.
func secretCommands() []string {
	return []string{
		"seq 1 2000",
		`test "$(printf %s "$DB_PASSWORD" | sha256sum | cut -d' ' -f1)" = ` + sha256Hex(e2eDBPassword),
		`test "$(printf %s "$API_TOKEN" | sha256sum | cut -d' ' -f1)" = ` + sha256Hex(e2eAPIToken),
		`echo "db=$DB_PASSWORD token=$API_TOKEN"`,
		`echo "stderr-token=$API_TOKEN" >&2`,
		`printf 'split=%s' "${DB_PASSWORD%????????}"; sleep 0.1; printf '%s\n' "${DB_PASSWORD#"${DB_PASSWORD%????????}"}"`,
	}
}

// secretsJob is a job of two orders: one fetching both secrets, and one after it fetching one.
// cmdsBefore run first in the first order.
func secretsJob(t *testing.T, cmdsBefore ...string) []byte {
	t.Helper()
	job := map[string]any{
		"username": "newcomer",
		"orders": []map[string]any{
			{
				"order_name": "use-secrets", "timeout": 60,
				"ssm_paths": []string{"/team/db-password"}, "secret_manager_paths": []string{"deploy/api-token"},
				"cmds": append(cmdsBefore, secretCommands()...),
			},
			{
				"order_name": "after", "timeout": 60, "dependencies": []string{"use-secrets"},
				"ssm_paths": []string{"/team/db-password"},
				"cmds":      []string{`echo "again db=$DB_PASSWORD"`},
			},
		},
	}
	body, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// leakScan is what a search of a data folder looked at, by kind.
type leakScan map[string]int

// requireNoValues searches every file under root, every object the data folder's database
// keeps as a row (folderblobs.Table), and every entry of every zip among them decompressed, for
// each secret value (as it is, and in base64), and fails for each one found. It returns what it
// searched, so the caller can check the search covered what it must.
func requireNoValues(t *testing.T, root string) leakScan {
	t.Helper()
	var needles [][]byte
	for _, v := range secretValues {
		needles = append(needles, []byte(v), []byte(base64.StdEncoding.EncodeToString([]byte(v))))
	}
	find := func(where string, data []byte) {
		for _, n := range needles {
			if bytes.Contains(data, n) {
				t.Errorf("%s holds a secret value (%q)", where, n)
			}
		}
	}
	seen := leakScan{}
	// search looks at one file or object: rel is its path under root (for an object kept as a
	// row, the path its file would have), which tells its kind.
	search := func(where, rel string, data []byte) {
		find(where, data)
		seen[kindOf(rel)]++
		if !bytes.HasPrefix(data, []byte("PK\x03\x04")) {
			return
		}
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Errorf("%s: %v", where, err)
			return
		}
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Errorf("%s entry %s: %v", where, f.Name, err)
				continue
			}
			body, err := io.ReadAll(io.LimitReader(rc, 256<<20))
			rc.Close()
			if err != nil {
				t.Errorf("%s entry %s: %v", where, f.Name, err)
				continue
			}
			find(where+" entry "+f.Name, body)
			seen["zip entry"]++
			if f.Name == bundle.SealedName {
				seen["sealed file"]++
				if !bytes.Contains(body, []byte("ENC[AES256_GCM,")) {
					t.Errorf("%s entry %s is not a SOPS document", where, f.Name)
				}
			}
		}
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // a temporary file that went while the folder was walked
		}
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		search(rel, rel, data)
		return nil
	})
	if err != nil {
		t.Fatalf("search %s: %v", root, err)
	}
	for _, o := range blobRows(t, root) {
		search("queues.db: "+o.bucket+" object "+o.key, path.Join("blobs", o.bucket, o.key), o.body)
	}
	return seen
}

// blobRow is an object the embedded engine keeps as a row of its queues.db.
type blobRow struct {
	bucket, key string
	body        []byte
}

// blobRows reads every object kept as a row in the queues.db of the data folder data, opened
// read-only (the engine may be running: it keeps writing meanwhile).
func blobRows(t *testing.T, data string) []blobRow {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "queues.db")+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), "SELECT bucket, key, body FROM "+folderblobs.Table+" ORDER BY bucket, key")
	if err != nil {
		t.Fatalf("read the blob table: %v", err)
	}
	defer rows.Close()
	var out []blobRow
	for rows.Next() {
		var o blobRow
		if err := rows.Scan(&o.bucket, &o.key, &o.body); err != nil {
			t.Fatal(err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// kindOf names what a file under the data folder is.
func kindOf(rel string) string {
	switch {
	case rel == "iac-ci.db" || rel == "queues.db":
		return "database"
	case rel == "iac-ci.db-wal" || rel == "queues.db-wal":
		return "wal"
	case strings.HasPrefix(rel, "blobs/internal/requests/"):
		return "request"
	case strings.HasSuffix(rel, "exec.zip"):
		return "exec.zip"
	case strings.HasSuffix(rel, "stripped.zip"):
		return "stripped.zip"
	case strings.HasPrefix(rel, "blobs/internal/logs/"):
		return "log"
	case strings.HasSuffix(rel, "result.json"):
		return "result"
	case strings.HasPrefix(rel, "blobs/done/") && strings.HasSuffix(rel, "/done"):
		return "done"
	case strings.HasPrefix(rel, "keys/"):
		return "key"
	}
	return "other"
}

// requireScanned fails unless the search saw at least the given number of files of each kind.
func requireScanned(t *testing.T, seen leakScan, want map[string]int) {
	t.Helper()
	for kind, n := range want {
		if seen[kind] < n {
			t.Errorf("the search saw %d %s files, want at least %d; it saw %v", seen[kind], kind, n, seen)
		}
	}
}

// requireNoValueIn fails when text holds a secret value.
func requireNoValueIn(t *testing.T, where, text string) {
	t.Helper()
	for _, v := range secretValues {
		if strings.Contains(text, v) {
			t.Errorf("%s holds the secret value %q:\n%s", where, v, text)
		}
	}
}

// internalBlob reads an object of the internal bucket of a data folder, as the engine keeps it:
// a file, or a row of its queues.db. The engine may be running; they share the database as two
// processes may.
func internalBlob(t *testing.T, data, key string) []byte {
	t.Helper()
	db, err := sqlitedb.Open(filepath.Join(data, "queues.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b, err := folderblobs.New(filepath.Join(data, "blobs"), "internal", folderblobs.Options{Inline: db})
	if err != nil {
		t.Fatal(err)
	}
	body, err := b.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("blob %s: %v", key, err)
	}
	return body
}

// requireMaskedLog reads an order's stored log and checks that every way the commands printed
// a value shows ***.
func requireMaskedLog(t *testing.T, data, logKey string) {
	t.Helper()
	if logKey == "" {
		t.Fatalf("the first order's log was not stored")
	}
	log := internalBlob(t, data, logKey)
	for _, want := range []string{"db=*** token=***", "stderr-token=***", "split=***"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("stored log lacks %q:\n%s", want, log)
		}
	}
}

// fullScan is what a run of two orders leaves to search. No result.json: the embedded workers
// hand their results to the orchestrator in process, and the results (log tails included) are
// in the database's order records.
var fullScan = map[string]int{
	"database": 2, "request": 1, "exec.zip": 2, "stripped.zip": 2, "sealed file": 2,
	"log": 1, "done": 1,
}

func TestSecretsRunLeavesNoValueBehind(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	jobFile := filepath.Join(dir, "job.json")
	if err := os.WriteFile(jobFile, secretsJob(t), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	r := iacci(t, nil, "run", "--log-level", "debug", "--secrets", writeSecretsFile(t, 0o600), "--data", data, jobFile)
	if r.code != 0 {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	requireNoValueIn(t, "iac-ci run's stdout", r.stdout)
	requireNoValueIn(t, "iac-ci run's stderr", r.stderr)

	db, err := sqlitedb.Open(filepath.Join(data, "iac-ci.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var runID string
	if err := db.QueryRow("SELECT run_id FROM store_runs").Scan(&runID); err != nil {
		t.Fatalf("find the run: %v", err)
	}
	st, err := sqlitestore.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	orders, err := st.ListOrders(t.Context(), runID)
	if err != nil {
		t.Fatal(err)
	}
	if len(orders) != 2 || orders[0].Status != "succeeded" || orders[1].Status != "succeeded" {
		t.Fatalf("orders %+v, want two succeeded", orders)
	}
	if !strings.Contains(orders[0].LogTail, "db=*** token=***") || !strings.Contains(orders[1].LogTail, "again db=***") {
		t.Errorf("stored log tails are not masked:\n%s\n%s", orders[0].LogTail, orders[1].LogTail)
	}
	requireMaskedLog(t, data, orders[0].LogKey)
	requireScanned(t, requireNoValues(t, data), fullScan)
	if keys, _ := filepath.Glob(filepath.Join(data, "keys", "*")); len(keys) != 0 {
		t.Errorf("key files left after the run was finalized: %v", keys)
	}
}

// TestSecretsServeSealsForSopsAndLeavesNoValueBehind runs the job through serve and the webhook.
// Its first command waits for a file, so the run key can be read from the data folder while the
// run is open and the bundle opened with sops's own decrypt. Setting SOPS_AGE_KEY changes the
// process environment, so this test does not run in parallel.
func TestSecretsServeSealsForSopsAndLeavesNoValueBehind(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	gate := filepath.Join(openDir(t), "go")
	s := startServer(t, data, nil, "--webhook-secret", secret, "--secrets", writeSecretsFile(t, 0o600))
	code, body := s.post("/webhook", secretsJob(t, `while [ ! -e '`+gate+`' ]; do sleep 0.05; done`), secret, nil)
	if code != http.StatusAccepted {
		t.Fatalf("status %d, want 202: %v", code, body)
	}
	runID, _ := body["run_id"].(string)
	if runID == "" {
		t.Fatalf("no run_id in %v", body)
	}

	keyFile := filepath.Join(data, "keys", runID+".key")
	// The order waits at its gate, so the run stays open: its first order is running.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := get(s.url + "/runs/" + runID)
		if err != nil {
			t.Fatal(err)
		}
		view, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			if v := parseView(t, string(view)); len(v.Orders) == 2 && v.Orders[0].Status == "running" {
				break
			} else if v.Status.Terminal() {
				t.Fatalf("the run ended before its first order was let through its gate: %s", view)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first order did not start within 30 s: %s\n%s", view, s.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	info, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("run key file mode %04o, want 0600", perm)
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	zipData := internalBlob(t, data, blobs.ExecKey(runID, 1))
	zr, err := zip.NewReader(bytes.NewReader(zipData), int64(len(zipData)))
	if err != nil {
		t.Fatal(err)
	}
	var sealed []byte
	for _, f := range zr.File {
		if f.Name == bundle.SealedName {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			sealed, err = io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if sealed == nil {
		t.Fatalf("exec.zip has no %s", bundle.SealedName)
	}
	t.Setenv("SOPS_AGE_KEY", strings.TrimSpace(string(key)))
	plain, err := decrypt.Data(sealed, "json")
	if err != nil {
		t.Fatalf("sops decrypt with the run key: %v", err)
	}
	var env map[string]string
	if err := json.Unmarshal(plain, &env); err != nil {
		t.Fatalf("decrypted document: %v", err)
	}
	if env["DB_PASSWORD"] != e2eDBPassword || env["API_TOKEN"] != e2eAPIToken || env["RUN_ID"] != runID {
		t.Fatalf("sops decrypted %d variables, without the expected values of DB_PASSWORD, API_TOKEN and RUN_ID", len(env))
	}

	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	v := s.waitRun(runID, time.Minute)
	if v.Status != "succeeded" {
		t.Fatalf("run %s: %+v\n%s", v.Status, v.Orders, s.log())
	}
	if _, err := os.Stat(keyFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("run key file after finalization: %v, want it gone", err)
	}
	requireMaskedLog(t, data, v.Orders[0].LogKey)
	// Once while the server runs, with the database's write-ahead log in place, and once after.
	want := map[string]int{"wal": 1}
	for k, n := range fullScan {
		want[k] = n
	}
	requireScanned(t, requireNoValues(t, data), want)
	s.stop()
	requireScanned(t, requireNoValues(t, data), fullScan)
	requireNoValueIn(t, "the server's log", s.log())
}

func TestSecretsFileReadableByOthersIsRefused(t *testing.T) {
	t.Parallel()
	file := writeSecretsFile(t, 0o644)
	dir := t.TempDir()
	jobFile := filepath.Join(dir, "job.json")
	if err := os.WriteFile(jobFile, secretsJob(t), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"run", "--secrets", file, "--data", filepath.Join(dir, "run-data"), jobFile},
		{"serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "serve-data"), "--webhook-secret", secret, "--secrets", file},
	} {
		r := iacci(t, nil, args...)
		if r.code != 3 {
			t.Errorf("iac-ci %s: exit %d, want 3\n%s", args[0], r.code, r.stderr)
		}
		for _, want := range []string{"chmod 600 " + file, "0644"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("iac-ci %s: stderr lacks %q:\n%s", args[0], want, r.stderr)
			}
		}
		requireNoValueIn(t, "iac-ci "+args[0]+"'s output", r.stdout+r.stderr)
	}
}
