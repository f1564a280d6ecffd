package cli

import (
	"context"
	"errors"
	"io"
)

// workerCommand is `iac-ci worker`: one order attempt, as CodeBuild or an SSM instance runs it.
func workerCommand(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	return errors.New("worker: not built yet")
}
