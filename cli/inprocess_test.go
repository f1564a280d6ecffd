package cli

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A request to the server's own address reaches its handler as one from the network would
// (method, path, query, headers, body) with nothing listening; any other goes to next.
func TestInProcessTransport(t *testing.T) {
	t.Parallel()
	var got *http.Request
	var gotBody string
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		w.Header().Set("X-Seen", "yes")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "stored")
	})
	var forwarded []string
	client := &http.Client{Transport: inProcessTransport{
		host: "127.0.0.1:1", handler: handler,
		next: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			forwarded = append(forwarded, r.URL.String())
			return &http.Response{StatusCode: http.StatusTeapot, Body: http.NoBody, Request: r}, nil
		}),
	}}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut,
		"http://127.0.0.1:1/blobs/internal/callbacks/r/0001/1/result.json?X-Signature=abc", strings.NewReader(`{"status":"succeeded"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("PUT to the own address: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || string(body) != "stored" || resp.Header.Get("X-Seen") != "yes" {
		t.Errorf("response %d %q %v, want the handler's 201 \"stored\"", resp.StatusCode, body, resp.Header)
	}
	if got == nil || got.Method != http.MethodPut || got.URL.Path != "/blobs/internal/callbacks/r/0001/1/result.json" ||
		got.URL.Query().Get("X-Signature") != "abc" || got.Header.Get("Content-Type") != "application/json" ||
		gotBody != `{"status":"succeeded"}` || got.RequestURI != "/blobs/internal/callbacks/r/0001/1/result.json?X-Signature=abc" {
		t.Errorf("the handler got %+v with body %q", got, gotBody)
	}
	if len(forwarded) != 0 {
		t.Errorf("forwarded %q", forwarded)
	}
	for _, u := range []string{"http://127.0.0.1:2/x", "https://127.0.0.1:1/x"} {
		resp, err := client.Post(u, "text/plain", bytes.NewReader(nil))
		if err != nil || resp.StatusCode != http.StatusTeapot {
			t.Errorf("POST %s: %v, %v; want it sent on by next", u, resp, err)
		}
	}
	if len(forwarded) != 2 {
		t.Errorf("forwarded %q, want both other addresses", forwarded)
	}
}
