package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/iac-ci/iac-ci/domain"
	"github.com/iac-ci/iac-ci/vcs/github"
)

const validateUsage = `Usage: iac-ci validate [flags] FILE...

Checks jobs (JSON or YAML, as iac-ci run takes them; - reads standard input) and repositories'
.iac-ci.yml files (a file of that name, or any file with --config) without running anything, and
prints every problem of each, with its path and how to fix it. Exits 0 when every file is valid,
2 when one is not.

Example:
  iac-ci validate examples/diamond.yaml examples/.iac-ci.yml
  iac-ci validate --json job.yaml

Flags:
`

// validateCommand is `iac-ci validate`: the checks of `iac-ci run` and of a pull request's
// .iac-ci.yml, with nothing run and nothing stored.
func validateCommand(args []string, getenv Env, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, `print the problems as one JSON object, {"problems": [{"file", "path", "message"}]}`)
	asConfig := fs.Bool("config", false, "read every file as a repository's .iac-ci.yml, whatever its name")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), validateUsage)
		fs.PrintDefaults()
	}
	files, err := parseFlags(fs, args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err == nil && len(files) == 0 {
		err = usagef("validate: name a job file or .iac-ci.yml to check (- for standard input)")
	}
	if err != nil {
		fmt.Fprintln(stderr, "iac-ci", err)
		return ExitRejected
	}
	var all []fileProblem
	for _, file := range files {
		kind, problems, err := validateFile(file, *asConfig, stdin, stderr, getenv)
		if err != nil {
			problems = []domain.Problem{{Message: err.Error()}}
		}
		all = append(all, problemsOf(file, problems)...)
		if *asJSON {
			continue
		}
		switch len(problems) {
		case 0:
			fmt.Fprintf(stdout, "%s: a valid %s\n", displayName(file), kind)
		case 1:
			fmt.Fprintf(stdout, "%s: 1 problem:\n", displayName(file))
		default:
			fmt.Fprintf(stdout, "%s: %d problems:\n", displayName(file), len(problems))
		}
		for _, p := range problems {
			fmt.Fprintf(stdout, "  %s\n", p)
		}
	}
	if *asJSON {
		writeProblems(stdout, all)
	}
	if len(all) > 0 {
		return ExitRejected
	}
	return ExitSucceeded
}

// validateFile checks one file and says what it was read as. An error is a file that could not
// be read at all.
func validateFile(file string, asConfig bool, stdin io.Reader, stderr io.Writer, getenv Env) (string, []domain.Problem, error) {
	if asConfig || filepath.Base(file) == github.ConfigPath || filepath.Base(file) == ".iac-ci.yaml" {
		var body []byte
		var err error
		if file == "-" {
			body, err = io.ReadAll(io.LimitReader(stdin, domain.MaxBodyBytes+1))
		} else {
			body, err = os.ReadFile(file)
		}
		if err != nil {
			return "", nil, err
		}
		return github.ConfigPath, github.CheckConfig(body), nil
	}
	job, _, err := loadJob(file, stdin, stderr, getenv)
	var invalid *domain.ValidationError
	if errors.As(err, &invalid) {
		for i, p := range invalid.Problems {
			if p.Path == "allow_forks" || p.Path == "draft_prs" {
				invalid.Problems[i].Message += " in a job; if this is a repository's .iac-ci.yml, name it so or pass --config"
			}
		}
		return "job", invalid.Problems, nil
	}
	if err != nil {
		return "", nil, err
	}
	if len(job.Orders) == 1 {
		return "job of 1 order", nil, nil
	}
	return fmt.Sprintf("job of %d orders", len(job.Orders)), nil, nil
}
