package tests

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Values the hostile order must not find: the server's webhook secret and GitHub token (in its
// environment only, not on its command line), a token the operator keeps in the server's
// environment, and the values of the --secrets file (one of them held by another run's order,
// in its environment and in a file of its working directory).
const (
	hostileWebhookSecret = "whsec-hostile-test-3b1f0c9a"
	hostileGitHubToken   = "ghp_hostileTestToken0123456789abcdef"
	hostileOperatorToken = "operator-token-5e7d21aa90"
)

// TestSandboxOrderFindsNoSecretOfTheServerOrOfAnotherRun runs, as an order of a job that names
// no secret, every read a hostile pull request would try: the environment and command line of
// every process in /proc, the --secrets file, every file under the data folder, and the working
// directory of an order of another run that is running meanwhile with secrets. None of the
// values is found. The order's loot goes to a folder of the test's, unmasked, so masking cannot
// hide a leak from the test.
func TestSandboxOrderFindsNoSecretOfTheServerOrOfAnotherRun(t *testing.T) {
	t.Parallel()
	t.Run("iac-ci as root", func(t *testing.T) {
		t.Parallel()
		requireOrderFindsNothing(t, nil)
	})
	// iac-ci run by a user: the order runs as that same user, so only the namespaces, the
	// mounts and iac-ci being not dumpable stand between it and the values.
	t.Run("iac-ci as a user", func(t *testing.T) {
		t.Parallel()
		if os.Geteuid() != 0 {
			requireOrderFindsNothing(t, nil) // the test itself runs as a user
			return
		}
		requireOrderFindsNothing(t, asOrderUser(t))
	})
}

func requireOrderFindsNothing(t *testing.T, user *serverUser) {
	data := filepath.Join(openDir(t), "data")
	loot := openDir(t)
	secretsFile := writeSecretsFile(t, 0o600)
	if user != nil {
		// The server's own, as the README asks of a secrets file: mode 0600, its user's.
		if err := os.Chown(secretsFile, int(user.cred.Uid), int(user.cred.Gid)); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Dir(secretsFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Dir(filepath.Dir(secretsFile)), 0o711); err != nil {
			t.Fatal(err)
		}
	}
	s := startServerAs(t, user, data, []string{
		"IAC_CI_WEBHOOK_SECRET=" + hostileWebhookSecret, "IAC_CI_GITHUB_TOKEN=" + hostileGitHubToken,
		"OPERATOR_TOKEN=" + hostileOperatorToken,
	}, "--secrets", secretsFile, "--github-api-url", "http://127.0.0.1:9/")

	// The victim: an order of another run, holding both secrets in its environment and one in a
	// file of its working directory, running until the test lets it go.
	gate := filepath.Join(loot, "go")
	victim := map[string]any{"username": "victim", "orders": []map[string]any{{
		"order_name": "victim", "timeout": 120,
		"ssm_paths": []string{"/team/db-password"}, "secret_manager_paths": []string{"deploy/api-token"},
		"cmds": []string{`printf %s "$DB_PASSWORD" > state.txt && touch ` + loot + `/victim-ready && ` +
			`while [ ! -e ` + gate + ` ]; do sleep 0.05; done`},
	}}}
	victimRun := submitJob(t, s, hostileWebhookSecret, victim)
	waitForCondition(t, "the victim order to start", 60*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(loot, "victim-ready"))
		return err == nil
	})

	out := filepath.Join(loot, "loot")
	script := strings.Join([]string{
		`for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do echo "== $f"; tr '\0' '\n' < "$f"; echo; done`,
		`for f in /proc/[0-9]*/cwd; do echo "== $f"; ls -la "$f/"; for x in "$f"/* "$f"/.*; do [ -f "$x" ] && head -c 65536 "$x"; done; done`,
		`for f in /proc/[0-9]*/mem; do echo "== $f"; head -c 4096 "$f" | tr -dc '[:print:]'; echo; done`,
		`echo "== secrets file"; cat "$SECRETS_FILE"`,
		`echo "== data folder"; ls -laR "$DATA"; find "$DATA" -type f -exec cat {} +`,
		`echo "== work"; for x in "$DATA"/work/*/* "$DATA"/work/*/.*; do [ -f "$x" ] && cat "$x"; done; ls -la "$DATA"/work`,
	}, "; ")
	hostile := map[string]any{"username": "hostile", "orders": []map[string]any{{
		"order_name": "hostile", "timeout": 120,
		"env_vars": map[string]string{"HOSTILE_MARK": "present", "SECRETS_FILE": secretsFile, "DATA": data},
		"cmds":     []string{"{ " + script + "; } > " + out + " 2>&1; true"},
	}}}
	hostileRun := submitJob(t, s, hostileWebhookSecret, hostile)
	if v := s.waitRun(hostileRun, 2*time.Minute); v.Status != "succeeded" {
		t.Fatalf("the hostile run %s\n%s", v.Status, s.log())
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if v := s.waitRun(victimRun, 2*time.Minute); v.Status != "succeeded" {
		t.Fatalf("the victim run %s\n%s", v.Status, s.log())
	}

	if !strings.Contains(s.log(), `"msg":"orders run confined","mode":"namespaces"`) {
		t.Errorf("the server did not say its orders run in namespaces:\n%s", s.log())
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("the hostile order left no loot: %v", err)
	}
	// The reads did run: the order read its own environment through /proc.
	if !strings.Contains(string(got), "HOSTILE_MARK=present") {
		t.Fatalf("the hostile order did not even read its own /proc/self/environ:\n%s", got)
	}
	for _, v := range append([]string{hostileWebhookSecret, hostileGitHubToken, hostileOperatorToken}, secretValues...) {
		if strings.Contains(string(got), v) {
			t.Errorf("the hostile order found %q", v)
		}
	}
	if t.Failed() {
		t.Logf("loot:\n%s", got)
	}
}

// An env: secret location on a job that arrives over HTTP is refused (400, naming the field),
// and no run starts.
func TestSandboxEnvLocationOverHTTPIsRefused(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), []string{"IAC_CI_GITHUB_TOKEN=" + hostileGitHubToken},
		"--webhook-secret", secret, "--github-api-url", "http://127.0.0.1:9/")
	body, _ := json.Marshal(map[string]any{
		"username": "hostile", "git_repo": "attacker/repo", "git_token_location": "env:IAC_CI_GITHUB_TOKEN",
		"orders": []map[string]any{{"order_name": "a", "timeout": 30, "cmds": []string{"true"}}},
	})
	code, ans := s.post("/webhook", body, secret, nil)
	if code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400: %v", code, ans)
	}
	text, _ := json.Marshal(ans)
	for _, want := range []string{"git_token_location", "--allow-env"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("answer lacks %q: %s", want, text)
		}
	}
	if _, ok := ans["run_id"]; ok {
		t.Errorf("a run was started: %v", ans)
	}
}

// submitJob posts a job signed with secret and returns its run id.
func submitJob(t *testing.T, s *server, secret string, job map[string]any) string {
	t.Helper()
	body, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	code, ans := s.post("/webhook", body, secret, nil)
	runID, _ := ans["run_id"].(string)
	if code != http.StatusAccepted || runID == "" {
		t.Fatalf("submit: %d %v", code, ans)
	}
	return runID
}
