package cli

import (
	"context"
	"errors"
	"io"
)

// lambdaCommand is `iac-ci lambda`: the binary as one of iac-ci's Lambda functions.
func lambdaCommand(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	return errors.New("lambda: not built yet")
}
