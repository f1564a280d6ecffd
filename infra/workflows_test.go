package infra_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
)

// lint runs actionlint (as a library: no binary to fetch) on workflow files, or on content
// given for one path; shellcheck and pyflakes are left out, so the result is the same on every
// machine.
func lint(t *testing.T, paths []string, content []byte) []*actionlint.Error {
	t.Helper()
	l, err := actionlint.NewLinter(io.Discard, &actionlint.LinterOptions{})
	if err != nil {
		t.Fatalf("actionlint: %v", err)
	}
	if content != nil {
		errs, err := l.Lint(paths[0], content, nil)
		if err != nil {
			t.Fatalf("actionlint: %v", err)
		}
		return errs
	}
	errs, err := l.LintFiles(paths, nil)
	if err != nil {
		t.Fatalf("actionlint: %v", err)
	}
	return errs
}

func TestWorkflowsPassActionlint(t *testing.T) {
	t.Parallel()
	paths, err := filepath.Glob(filepath.Join("..", ".github", "workflows", "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ci.yml", "deploy.yml"} {
		found := false
		for _, p := range paths {
			found = found || filepath.Base(p) == want
		}
		if !found {
			t.Fatalf("no .github/workflows/%s (got %v)", want, paths)
		}
	}
	if errs := lint(t, paths, nil); len(errs) > 0 {
		var msgs []string
		for _, e := range errs {
			msgs = append(msgs, e.Error())
		}
		t.Fatalf("actionlint:\n%s", strings.Join(msgs, "\n"))
	}
	// The linter finds a fault: an unknown runner label and an undefined step output.
	broken := "on: push\njobs:\n  x:\n    runs-on: ubuntu-latst\n    steps:\n      - run: echo ${{ steps.none.outputs.v }}\n"
	if errs := lint(t, []string{"broken.yml"}, []byte(broken)); len(errs) < 2 {
		t.Fatalf("a broken workflow: actionlint found %v", errs)
	}
}

// The deploy workflow reaches AWS with OIDC and a role, never with stored keys, and runs every
// step docs/deploy.md gives.
func TestDeployWorkflowUsesOIDCAndEveryStep(t *testing.T) {
	t.Parallel()
	wf := readFile(t, filepath.Join("..", ".github", "workflows", "deploy.yml"))
	for _, want := range []string{"id-token: write", "role-to-assume:", "infra/00-bootstrap", "infra/01-ecr", "docker buildx build",
		"infra/02-deploy", "tests/smoke/test_deploy.sh"} {
		if !strings.Contains(wf, want) {
			t.Errorf("deploy.yml: no %q", want)
		}
	}
	for _, banned := range []string{"aws-access-key-id", "aws-secret-access-key", "AWS_SECRET_ACCESS_KEY"} {
		if strings.Contains(wf, banned) {
			t.Errorf("deploy.yml uses stored keys (%s): use OIDC", banned)
		}
	}
	ci := readFile(t, filepath.Join("..", ".github", "workflows", "ci.yml"))
	if !strings.Contains(ci, "pull_request") || !strings.Contains(ci, ".ci/run") {
		t.Errorf("ci.yml: does not run .ci/run on pull requests")
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
