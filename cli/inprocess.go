package cli

import (
	"bytes"
	"io"
	"net/http"
)

// inProcessTransport hands requests addressed to this process's own server straight to the
// server's handler, in the calling goroutine: the embedded workers run in this process, and
// each result they PUT to its presigned URL would otherwise cross the loopback interface and
// two HTTP parsers. The handler gets the same method, path, query (with its signature), headers
// and body, so a URL is checked exactly as when it arrives over the network, as it does from
// a command that PUTs to $CALLBACK_URL itself. Requests to any other address go to next.
type inProcessTransport struct {
	host    string // host:port the server listens on
	handler http.Handler
	next    http.RoundTripper
}

func (t inProcessTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != t.host || (r.URL.Scheme != "http" && r.URL.Scheme != "") {
		return t.next.RoundTrip(r)
	}
	in := r.Clone(r.Context())
	in.RequestURI = r.URL.RequestURI()
	in.Host = r.URL.Host
	if in.Body == nil {
		in.Body = http.NoBody
	}
	in.Body = io.NopCloser(in.Body) // the handler's Close must not close the caller's body twice
	w := &responseRecorder{header: http.Header{}}
	t.handler.ServeHTTP(w, in)
	if r.Body != nil {
		r.Body.Close() // as a transport must, whatever the handler read
	}
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return &http.Response{
		Status: http.StatusText(w.code), StatusCode: w.code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.header, Body: io.NopCloser(&w.body), ContentLength: int64(w.body.Len()), Request: r,
	}, nil
}

// responseRecorder keeps what a handler writes.
type responseRecorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (w *responseRecorder) Header() http.Header { return w.header }

func (w *responseRecorder) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *responseRecorder) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}
