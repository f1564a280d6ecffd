package cli

import (
	"context"
	"errors"
	"io"
)

// serveAWS runs the engine against AWS resources.
func serveAWS(ctx context.Context, o Options, getenv Env, stdout io.Writer) error {
	return errors.New("the aws backend is not wired yet")
}

// awsSetupCommand is `iac-ci aws-setup`.
func awsSetupCommand(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	return errors.New("aws-setup: not built yet")
}
