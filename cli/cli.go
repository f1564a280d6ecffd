// Package cli is iac-ci's command line: it parses flags, opens the backend's ports (package
// embedded or awsbackend), hands them to the one assembly (package assembly) and hosts what it
// builds. cmd/iac-ci calls Main and nothing else, so tests call Main too.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/iac-ci/iac-ci/sandbox"
)

// Version is set at build time with -ldflags "-X github.com/iac-ci/iac-ci/cli.Version=...".
var Version = "dev"

// Exit codes of every command; `iac-ci run` uses them all.
const (
	ExitSucceeded   = 0
	ExitFailed      = 1   // the run failed or timed out
	ExitRejected    = 2   // the job was rejected, or the command was used wrongly
	ExitError       = 3   // iac-ci itself could not do its work
	ExitInterrupted = 130 // interrupted (Ctrl-C or SIGTERM), as shells report a SIGINT
)

// Env is the process environment as a lookup, so tests can give their own.
type Env func(string) string

const usage = `iac-ci: a queue-driven CI engine for infrastructure code.

Usage:
  iac-ci run [flags] JOB_FILE     run a job on this machine and print its result (- reads standard input)
  iac-ci validate [flags] FILE... check jobs or .iac-ci.yml files without running anything
  iac-ci serve [flags]            serve webhooks and run jobs until stopped
  iac-ci runs [flags]             list runs, newest first (a data folder, --server URL, or --backend aws)
  iac-ci status [flags] RUN_ID    show a run's orders, as run's final table
  iac-ci logs RUN ORDER [-f]      print (or follow) an order's whole log
  iac-ci rerun RUN [flags]        run an earlier run's job again, as a new run
  iac-ci dlq list|show|redrive|purge   inspect, redrive or purge dead letters
  iac-ci worker [flags]           run one order attempt handed over by CodeBuild or SSM
  iac-ci aws-setup [flags]        create the AWS resources iac-ci uses (queues, tables, buckets)
  iac-ci lambda                   run as an AWS Lambda function (the function is picked by $IAC_CI_FUNCTION)
  iac-ci version                  print the version
  iac-ci help COMMAND             print a command's help, with an example

Example:
  iac-ci run examples/diamond.yaml

Flags may come before or after the arguments. Exit codes: 0 succeeded, 1 the run failed or timed
out, 2 the job was rejected or the command misused, 3 iac-ci's own error, 130 interrupted.
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
		return runCommand(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "validate":
		return validateCommand(args[1:], getenv, stdin, stdout, stderr)
	case "serve":
		err = serveCommand(ctx, args[1:], getenv, stdout, stderr)
	case "runs":
		err = runsCommand(ctx, args[1:], getenv, stdout, stderr)
	case "status":
		err = statusCommand(ctx, args[1:], getenv, stdout, stderr)
	case "worker":
		err = workerCommand(ctx, args[1:], getenv, stdout, stderr)
	case "aws-setup":
		err = awsSetupCommand(ctx, args[1:], getenv, stdout, stderr)
	case "lambda":
		err = lambdaCommand(ctx, args[1:], getenv, stdout, stderr)
	case "dlq":
		err = dlqCommand(ctx, args[1:], getenv, stdout, stderr)
	case "rerun":
		err = rerunCommand(ctx, args[1:], getenv, stdout, stderr)
	case "logs":
		err = logsCommand(ctx, args[1:], getenv, stdout, stderr)
	case "version", "--version", "-v":
		if len(args) > 1 && slices.Contains([]string{"-h", "--help", "-help"}, args[1]) {
			fmt.Fprint(stdout, "Usage: iac-ci version\n\nPrints the version of this iac-ci.\n\nExample:\n  iac-ci version\n")
			return 0
		}
		fmt.Fprintln(stdout, "iac-ci", Version)
		return 0
	case "help", "-h", "--help", "-help":
		if len(args) > 1 && args[0] == "help" {
			if !slices.Contains(commands, args[1]) {
				fmt.Fprintf(stderr, "iac-ci help: unknown command %q\n\n%s", args[1], usage)
				return ExitRejected
			}
			return Main(ctx, []string{args[1], "-h"}, getenv, stdin, stdout, stderr)
		}
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

// commands are the commands `iac-ci help` knows.
var commands = []string{"run", "validate", "serve", "logs", "rerun", "dlq", "worker", "aws-setup", "lambda", "version"}

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
