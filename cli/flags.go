package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// parseFlags parses args the way users of gh, kubectl and terraform expect: flags may come
// before or after the arguments (`iac-ci run job.yaml --json`), and `--` ends the flags. It
// returns the arguments that are not flags. With -h it prints the command's usage to help and
// returns flag.ErrHelp; a bad flag or value is a usageError naming it and where the help is.
func parseFlags(fs *flag.FlagSet, args []string, help io.Writer) ([]string, error) {
	// The flag package prints its own complaint and the whole usage on every mistake; the error
	// alone, with a pointer to the help, is easier to read.
	fs.SetOutput(io.Discard)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(help)
				fs.Usage()
				return nil, flag.ErrHelp
			}
			return nil, usagef("%s: %v (iac-ci help %s lists the flags)", fs.Name(), err, fs.Name())
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		// Parse stopped at the first argument that is not a flag, or just after "--".
		if stoppedAt := len(args) - len(rest); stoppedAt > 0 && args[stoppedAt-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// choiceValue is a string flag that takes only the values in choices, so that a typo such as
// `--log-format jsn` is refused instead of quietly meaning the default.
type choiceValue struct {
	value   *string
	choices []string
}

func (c choiceValue) String() string {
	if c.value == nil {
		return ""
	}
	return *c.value
}

func (c choiceValue) Set(s string) error {
	if !slices.Contains(c.choices, s) {
		return fmt.Errorf("want one of %s", strings.Join(c.choices, ", "))
	}
	*c.value = s
	return nil
}

// choiceFlag defines a flag that takes one of choices; def must be one of them.
func choiceFlag(fs *flag.FlagSet, name, def, usage string, choices ...string) *string {
	v := def
	fs.Var(choiceValue{value: &v, choices: choices}, name, fmt.Sprintf("%s: %s", usage, strings.Join(choices, ", ")))
	return &v
}

// logFormatFlag and logLevelFlag are the logging flags every long-running command takes.
func logFormatFlag(fs *flag.FlagSet) *string {
	return choiceFlag(fs, "log-format", "text", "log format on standard error", "text", "json")
}

func logLevelFlag(fs *flag.FlagSet, def string) *string {
	return choiceFlag(fs, "log-level", def, "log level on standard error", "debug", "info", "warn", "error")
}

// countValue is an int flag of at least min.
type countValue struct {
	value *int
	min   int
}

func (c countValue) String() string {
	if c.value == nil {
		return ""
	}
	return strconv.Itoa(*c.value)
}

func (c countValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < c.min {
		return fmt.Errorf("want a whole number of at least %d", c.min)
	}
	*c.value = n
	return nil
}

// workersFlag is --workers: how many orders run at once per execution target, at least one.
func workersFlag(fs *flag.FlagSet) *int {
	n := 4
	fs.Var(countValue{value: &n, min: 1}, "workers", "orders run at once per execution target (at least 1)")
	return &n
}
