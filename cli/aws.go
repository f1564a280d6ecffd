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
