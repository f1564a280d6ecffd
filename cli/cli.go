// Package cli is iac-ci's command line: it parses flags, picks the backend, wires the ports to
// the engine, and runs. cmd/iac-ci calls Main and nothing else, so tests call Main too.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/iac-ci/iac-ci/sandbox"
)

// Version is set at build time with -ldflags "-X github.com/iac-ci/iac-ci/cli.Version=...".
var Version = "dev"

// Exit codes of `iac-ci run`.
const (
	ExitSucceeded = 0
	ExitFailed    = 1 // the run failed or timed out
	ExitRejected  = 2 // the job was rejected, or the command was used wrongly
	ExitError     = 3 // iac-ci itself could not do its work
)

// Env is the process environment as a lookup, so tests can give their own.
type Env func(string) string

const usage = `iac-ci: a queue-driven CI engine for infrastructure code.

Usage:
  iac-ci run [flags] JOB_FILE     run a job embedded and print its result
  iac-ci serve [flags]            serve webhooks and run jobs until stopped
  iac-ci worker [flags]           run one order attempt handed over by CodeBuild or SSM
  iac-ci aws-setup [flags]        create the AWS resources iac-ci uses (queues, tables, buckets)
  iac-ci lambda                   run as an AWS Lambda function (the function is picked by $IAC_CI_FUNCTION)
  iac-ci version                  print the version

Run 'iac-ci COMMAND -h' for a command's flags.
`

// Main runs iac-ci with args (without the program name) and returns the exit code.
func Main(ctx context.Context, args []string, getenv Env, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitRejected
	}
	var err error
	switch args[0] {
	case "run", "serve", "worker", "lambda":
		if code := prepareSandbox(getenv, stderr); code != 0 {
			return code
		}
	}
	switch args[0] {
	case "run":
		return runCommand(ctx, args[1:], getenv, stdout, stderr)
	case "serve":
		err = serveCommand(ctx, args[1:], getenv, stdout, stderr)
	case "worker":
		err = workerCommand(ctx, args[1:], getenv, stdout, stderr)
	case "aws-setup":
		err = awsSetupCommand(ctx, args[1:], getenv, stdout, stderr)
	case "lambda":
		err = lambdaCommand(ctx, args[1:], getenv, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "iac-ci", Version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "iac-ci: unknown command %q\n\n%s", args[0], usage)
		return ExitRejected
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(stderr, "iac-ci:", err)
		return ExitRejected
	}
	if err != nil {
		fmt.Fprintln(stderr, "iac-ci:", err)
		return ExitError
	}
	return 0
}

// EnvOrderUser names the user that orders' commands run as when iac-ci runs as root (a user name
// or uid:gid); by default the user iac-ci-order, or nobody where there is none.
const EnvOrderUser = "IAC_CI_ORDER_USER"

// prepareSandbox makes this process unreadable to the orders it runs (not dumpable: no
// /proc/<pid>/environ or mem for them) and finds whom orders run as.
func prepareSandbox(getenv Env, stderr io.Writer) int {
	if err := sandbox.Protect(); err != nil {
		fmt.Fprintln(stderr, "iac-ci:", err)
		return ExitError
	}
	if name := getenv(EnvOrderUser); name != "" && os.Geteuid() == 0 {
		u, err := sandbox.LookupUser(name)
		if err != nil {
			fmt.Fprintf(stderr, "iac-ci: %s: %v\n", EnvOrderUser, err)
			return ExitRejected
		}
		sandbox.Default.User = &u
	}
	return 0
}

// usageError is a mistake in how the command was called.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// newLogger makes the process logger: JSON when asked (and in Lambda), text otherwise.
func newLogger(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if strings.EqualFold(format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// splitList reads a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
