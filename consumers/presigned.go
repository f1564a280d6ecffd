package consumers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Transfer makes one GET or PUT of a presigned URL, the way every worker moves its bundle, log
// and result: it retries for up to two minutes on network errors and on 408, 429 and 5xx
// answers, and returns a GET's body (at most limit bytes). No error holds the URL, which is a
// credential. A nil client is one with a 30 s timeout.
func Transfer(ctx context.Context, client *http.Client, method, target, contentType string, body []byte, limit int64) ([]byte, error) {
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	var got []byte
	op := func() error {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, target, rd)
		if err != nil {
			return backoff.Permanent(fmt.Errorf("%s: the URL is not valid", method))
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := client.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // without the URL
			}
			return fmt.Errorf("%s: %w", method, err)
		}
		defer resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
			return fmt.Errorf("%s: answered %s", method, resp.Status)
		case resp.StatusCode >= 300:
			hint := ""
			if resp.StatusCode == http.StatusForbidden {
				hint = " (the URL may have expired)"
			}
			return backoff.Permanent(fmt.Errorf("%s: answered %s%s", method, resp.Status, hint))
		}
		if method != http.MethodGet {
			_, _ = io.Copy(io.Discard, resp.Body)
			return nil
		}
		got, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err != nil {
			return fmt.Errorf("%s: read the body: %w", method, err)
		}
		if int64(len(got)) > limit {
			return backoff.Permanent(fmt.Errorf("%s: the body is larger than %d bytes", method, limit))
		}
		return nil
	}
	if err := retryResult(ctx, op); err != nil {
		return nil, err
	}
	return got, nil
}

// retryResult runs op until it succeeds, fails permanently or ctx ends, with exponential
// backoff for up to two minutes: how a worker hands over a result, over HTTP or in process.
func retryResult(ctx context.Context, op backoff.Operation) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxElapsedTime = 2 * time.Minute
	return backoff.Retry(op, backoff.WithContext(b, ctx))
}
