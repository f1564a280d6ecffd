package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestGitHubFlagsAreChecked(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string // in stderr
	}{
		{"api URL without a token", []string{"serve", "--webhook-secret", "s", "--github-api-url", "https://ghe.example.com/api/v3/"},
			nil, "--github-api-url needs a token"},
		{"api URL that is not http", []string{"serve", "--webhook-secret", "s", "--github-token", "t", "--github-api-url", "ftp://ghe.example.com/"},
			nil, "is not an http(s) URL"},
		{"token from the environment, bad URL", []string{"run", "--github-api-url", "::", "job.yaml"},
			map[string]string{"IAC_CI_GITHUB_TOKEN": "t"}, "is not an http(s) URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			job := t.TempDir() + "/job.yaml"
			args := append([]string(nil), tc.args...)
			for i, a := range args {
				if a == "job.yaml" {
					args[i] = job
				}
			}
			if err := writeFile(job, "username: u\norders: [{cmds: [true], timeout: 5}]\n"); err != nil {
				t.Fatal(err)
			}
			getenv := func(k string) string { return tc.env[k] }
			var stdout, stderr bytes.Buffer
			code := Main(t.Context(), append(args[:1:1], append([]string{"--data", t.TempDir()}, args[1:]...)...), getenv, nil, &stdout, &stderr)
			if code != ExitRejected {
				t.Fatalf("exit code: got %d, want %d\n%s", code, ExitRejected, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("stderr: got %q, want it to say %q", stderr.String(), tc.want)
			}
			if strings.Contains(stderr.String(), "\tt\n") {
				t.Fatalf("stderr shows the token: %q", stderr.String())
			}
		})
	}
}
