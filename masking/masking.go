// Package masking hides secret values in text that leaves a run: captured logs, log tails and
// pull-request comments. Every occurrence of a secret value becomes "***"; occurrences that
// overlap (one secret inside or across another) become a single "***", so no part of any of them
// shows.
//
// Values shorter than MinLen bytes are not masked: a one- or two-character secret would turn
// every "a" or "10" of a log into "***" and hide far more than it protects. Such a value is not
// a secret worth the name; callers that care should reject it where it is configured.
//
// A Masker is safe for concurrent use. Its Writer masks a stream, including a value split across
// two writes, by holding back the last few bytes until more arrive or it is closed.
package masking

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"sync"
)

// MinLen is the length, in bytes, below which a value is not masked.
const MinLen = 3

// Mask is what a secret value is replaced with.
const Mask = "***"

// Masker replaces secret values with Mask.
type Masker struct {
	values [][]byte // distinct, at least MinLen long, longest first
	maxLen int
}

// New returns a Masker for the given secret values. Empty and short (< MinLen) values are
// ignored; duplicates count once.
func New(values ...string) *Masker {
	m := &Masker{}
	seen := make(map[string]bool, len(values))
	for _, v := range values {
		if len(v) < MinLen || seen[v] {
			continue
		}
		seen[v] = true
		m.values = append(m.values, []byte(v))
		m.maxLen = max(m.maxLen, len(v))
	}
	slices.SortFunc(m.values, func(a, b []byte) int { return len(b) - len(a) })
	return m
}

// String returns s with every secret value replaced by Mask.
func (m *Masker) String(s string) string {
	if m == nil || len(m.values) == 0 {
		return s
	}
	var out bytes.Buffer
	out.Grow(len(s))
	m.mask(&out, []byte(s), 0, true)
	return out.String()
}

// span is one occurrence of a value in a buffer: [start, end).
type span struct{ start, end int }

// mask writes the masked form of buf[:n] to out, where n is how much of buf is decided: all of
// it when final, else everything but the last maxLen-1 bytes, since a value could start there
// and end in bytes not yet seen. covered says how many leading bytes of buf belong to a masked
// region whose Mask was already written. It returns n and the new covered count relative to
// buf[n:].
//
// Only occurrences starting before n matter: an occurrence starting at n or later covers no
// byte before n, and every one starting before n fits in buf (n+maxLen-1 <= len(buf)).
func (m *Masker) mask(out *bytes.Buffer, buf []byte, covered int, final bool) (n, coveredAfter int) {
	n = len(buf)
	if !final && m.maxLen > 1 {
		n = max(0, len(buf)-(m.maxLen-1))
	}
	var spans []span
	for _, v := range m.values {
		for from := 0; from < n; {
			i := bytes.Index(buf[from:], v)
			if i < 0 || from+i >= n {
				break
			}
			spans = append(spans, span{from + i, from + i + len(v)})
			from += i + 1 // occurrences of one value may overlap ("aaaa" holds "aaa" twice)
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return a.start - b.start })

	done := 0 // bytes of buf before done are written or covered
	for _, sp := range spans {
		if sp.start < covered {
			covered = max(covered, sp.end)
			continue
		}
		out.Write(buf[max(done, covered):sp.start])
		out.WriteString(Mask)
		done, covered = sp.start, sp.end
	}
	if lo := max(done, covered); lo < n {
		out.Write(buf[lo:n])
	}
	return n, max(0, covered-n)
}

// ErrClosed: a write to a masking writer after Close.
var ErrClosed = errors.New("masking writer closed")

// Writer returns a writer that masks what is written to it and passes it on to w. Up to the
// longest value's length minus one byte is held back until the next Write or Close; Close
// writes what is held and does not close w.
func (m *Masker) Writer(w io.Writer) io.WriteCloser {
	if m == nil {
		m = &Masker{}
	}
	return &writer{m: m, w: w}
}

type writer struct {
	mu      sync.Mutex
	m       *Masker
	w       io.Writer
	held    []byte // bytes received but not yet decided
	covered int    // leading bytes of held already masked
	out     bytes.Buffer
	err     error // sticky: once w failed or Close ran, every Write fails
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	w.held = append(w.held, p...)
	if err := w.flush(false); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		if errors.Is(w.err, ErrClosed) {
			return nil
		}
		return w.err
	}
	err := w.flush(true)
	if err == nil {
		w.err = ErrClosed
	}
	return err
}

func (w *writer) flush(final bool) error {
	w.out.Reset()
	n, covered := w.m.mask(&w.out, w.held, w.covered, final)
	// Copy the remainder down so held does not grow without bound over a long stream.
	w.held = w.held[:copy(w.held, w.held[n:])]
	w.covered = covered
	if w.out.Len() == 0 {
		return nil
	}
	if _, err := w.w.Write(w.out.Bytes()); err != nil {
		w.err = err
		return err
	}
	return nil
}
