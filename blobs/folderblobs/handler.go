package folderblobs

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/iac-ci/iac-ci/blobs"
)

// Handler serves the presigned URLs of buckets under /blobs/{bucket}/{key...}: GET answers the
// object, PUT stores the body (and notifies, for a result key). A request must carry a valid,
// unexpired signature for its method, bucket and key (403 otherwise); a GET of a missing object
// is 404, another method 405, and a body over the bucket's limit 413.
func Handler(buckets ...*Bucket) http.Handler {
	byName := make(map[string]*Bucket, len(buckets))
	for _, b := range buckets {
		byName[b.name] = b
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/blobs/{bucket}/{key...}", func(w http.ResponseWriter, r *http.Request) {
		b, ok := byName[r.PathValue("bucket")]
		if !ok {
			http.Error(w, "no such bucket", http.StatusNotFound)
			return
		}
		if err := b.serve(w, r); err != nil {
			code := status(err)
			if code >= http.StatusInternalServerError {
				b.log.ErrorContext(r.Context(), "blob request failed",
					"bucket", b.name, "method", r.Method, "key", r.PathValue("key"), "err", err)
				http.Error(w, "internal error", code)
				return
			}
			http.Error(w, err.Error(), code)
		}
	})
	return mux
}

// errMethod: a method other than GET and PUT.
var errMethod = errors.New("method not allowed")

// status maps what serve returns onto an HTTP status.
func status(err error) int {
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, errMethod):
		return http.StatusMethodNotAllowed
	case errors.Is(err, errInvalidKey):
		return http.StatusBadRequest
	case errors.Is(err, errBadSignature), errors.Is(err, errExpired):
		return http.StatusForbidden
	case errors.Is(err, blobs.ErrNotFound):
		return http.StatusNotFound
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge
	default:
		return http.StatusInternalServerError
	}
}

// serve answers one request for b, or returns why it cannot; nothing is written to w then.
func (b *Bucket) serve(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodPut {
		w.Header().Set("Allow", "GET, PUT")
		return fmt.Errorf("%s: %w", r.Method, errMethod)
	}
	key := r.PathValue("key")
	if err := checkKey(key); err != nil {
		return err
	}
	if err := b.verify(r.Method, key, r.URL.Query()); err != nil {
		return err
	}
	if r.Method == http.MethodGet {
		return b.serveGet(w, r, key)
	}
	return b.servePut(w, r, key)
}

func (b *Bucket) serveGet(w http.ResponseWriter, r *http.Request, key string) error {
	body, f, err := b.lookup(r.Context(), key)
	if err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	// Set, so that ServeContent does not guess a type from the content.
	w.Header().Set("Content-Type", "application/octet-stream")
	if f == nil { // a row: no modification time to tell
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	http.ServeContent(w, r, "", fi.ModTime(), f)
	return nil
}

func (b *Bucket) servePut(w http.ResponseWriter, r *http.Request, key string) error {
	if r.ContentLength > b.maxBody {
		return fmt.Errorf("put %s: %w", key, &http.MaxBytesError{Limit: b.maxBody})
	}
	// The body streams to the temporary file, or into memory while it may still become a row;
	// MaxBytesReader stops it at the limit.
	n, notified, err := b.store(r.Context(), key, http.MaxBytesReader(w, r.Body, b.maxBody))
	if err != nil {
		return err
	}
	if !notified {
		if err := b.notifyCreated(r.Context(), key, n); err != nil {
			return err
		}
	}
	w.WriteHeader(http.StatusOK)
	return nil
}
