package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGitHubFlagsAreChecked(t *testing.T) {
	t.Parallel()
	const token = "ghp-never-shown"
	cases := []struct {
		name string
		args []string // the command, then its flags; the data folder and, for run, a job file are added
		env  map[string]string
		want string // in stderr
	}{
		{"api URL without a token", []string{"serve", "--webhook-secret", "s", "--api-token", "a", "--github-api-url", "https://ghe.example.com/api/v3/"},
			nil, "--github-api-url needs a token"},
		{"api URL that is not http", []string{"serve", "--webhook-secret", "s", "--api-token", "a", "--github-token", token, "--github-api-url", "ftp://ghe.example.com/"},
			nil, "is not an http(s) URL"},
		{"serve without an API token", []string{"serve", "--webhook-secret", "s"},
			nil, "no API token: pass --api-token or set IAC_CI_API_TOKEN"},
		{"run, token from the environment", []string{"run", "--github-api-url", "ghe.example.com"},
			map[string]string{"IAC_CI_GITHUB_TOKEN": token}, "is not an http(s) URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			args := append([]string{tc.args[0], "--data", filepath.Join(dir, "data")}, tc.args[1:]...)
			if tc.args[0] == "run" {
				job := filepath.Join(dir, "job.yaml")
				if err := os.WriteFile(job, []byte("username: u\norders: [{cmds: [\"true\"], timeout: 5}]\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, job)
			}
			var stdout, stderr bytes.Buffer
			code := Main(t.Context(), args, func(k string) string { return tc.env[k] }, nil, &stdout, &stderr)
			if code != ExitRejected {
				t.Fatalf("exit code: got %d, want %d\n%s", code, ExitRejected, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("stderr: got %q, want it to say %q", stderr.String(), tc.want)
			}
			if strings.Contains(stderr.String()+stdout.String(), token) {
				t.Fatalf("the output shows the token: %q", stderr.String())
			}
		})
	}
}
