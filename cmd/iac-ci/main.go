// Command iac-ci is a queue-driven CI engine for infrastructure code. See the README.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/iac-ci/iac-ci/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
