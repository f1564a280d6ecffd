package producers

import (
	"net/http"
	"time"
)

// RequestObserver is told how each webhook and SSM request was answered (metrics). It must
// not block.
type RequestObserver interface {
	ObserveRequest(route string, code int, took time.Duration)
}

// statusRecorder remembers the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// observed reports each answer of h to the server's Observer, under route.
func (s *Server) observed(route string, h http.HandlerFunc) http.HandlerFunc {
	if s.Observer == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h(rec, r)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		s.Observer.ObserveRequest(route, rec.code, time.Since(start))
	}
}
