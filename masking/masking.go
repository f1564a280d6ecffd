// Package masking hides secret values in text that leaves a run: captured logs, log tails and
// pull-request comments. Every occurrence of a secret becomes "***", and so does every form a
// secret is commonly printed in (Forms):
//
//   - each line of a multi-line secret on its own (a PEM key printed line by line, or indented in
//     a plan diff), trimmed of the spaces, tabs and carriage returns around it, as GitHub Actions
//     masks them;
//   - its base64, in the standard and URL alphabets, padded or not, also where the secret sits
//     inside a longer base64 stream at any of the three byte alignments, and as base64 tools wrap
//     it (lines of 76 or 64 characters);
//   - its URL encoding, as a query value and as a path segment, as Go, Python and JavaScript
//     write them;
//   - its JSON string escaping, as Go, Python and JavaScript write it.
//
// Occurrences that overlap (one form inside or across another) become a single "***", so no part
// of any of them shows.
//
// Short forms are not masked, since they would hide far more than they protect: a value shorter
// than MinLen bytes (a one- or two-character secret would turn every "a" or "10" of a log into
// "***"; callers should reject such values where they are configured); a line of a multi-line
// secret shorter than MinLineLen bytes once trimmed (a JSON key file's "}" or "{", a heredoc's
// "EOT", which every log is full of; the secret as a whole is still masked); and a base64 form
// shorter than MinBase64Len characters (a 3- or 4-byte secret at some alignments), which would
// match by chance in any long base64 text.
//
// Not covered: transformations no masker can know, such as a value reversed, hashed, encrypted,
// cut into parts printed apart (by different commands, or with anything between them), or
// encoded any way not listed above (hex, base32, another escaping). A value whose parts come out
// one right after the other, in one write or several, is masked. Commands that handle secrets
// should not print them.
//
// A Masker is safe for concurrent use. Its Writer masks a stream, including a form split across
// two writes, by holding back the last few bytes until more arrive or it is closed.
package masking

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"unicode/utf16"
)

// MinLen is the length, in bytes, below which a value is not masked.
const MinLen = 3

// MinLineLen is the length, in bytes, below which a line of a multi-line value is not masked on
// its own.
const MinLineLen = 4

// MinBase64Len is the length, in characters, below which a base64 form of a value is not masked:
// a random match of 6 characters is one chance in 2^36 per position.
const MinBase64Len = 6

// Mask is what a secret value is replaced with.
const Mask = "***"

// Masker replaces secret values, and the forms they are printed in, with Mask.
//
// It finds every form in one pass over the text, whatever their number, with the Wu-Manber
// algorithm: a window as long as the shortest form (at most maxWindow) slides along the text,
// and the last two bytes under it say how far it can move without passing the start of any
// form; only where they say 0 are the forms starting there compared. In a log, most windows move
// by nearly their whole length.
//
// The forms and the table are made on first use, not by New: a worker makes a masker for an
// order's callback URL before it knows the order's secrets, and uses it only if the order fails
// before they are known.
type Masker struct {
	values []string // distinct, at least MinLen long
	once   sync.Once

	// Made by build, on first use.
	forms [][]byte // distinct, each at least 3 bytes
	// byPrefix lists the forms by their first two bytes (little endian), longest first.
	byPrefix map[uint16][]int32
	window   int // bytes of each form the shift table is made of
	// shift says how far the window may move when its last two bytes are a and b, at
	// block(a, b). Only their low 7 bits count: two blocks that differ in the high bits share
	// the smaller shift, which is safe, and every pair of ASCII bytes (most of a log) has its
	// own. 16 KiB instead of the 64 of every two bytes keeps a masker, made for every order,
	// small; filling the table is most of the cost of masking an order's short log.
	shift  *[1 << 14]uint8
	maxLen int
	// first says which bytes some form starts with.
	first [256]bool
}

// block is where two bytes are in the shift table.
func block(a, b byte) uint32 { return uint32(a&0x7f)<<7 | uint32(b&0x7f) }

// maxWindow bounds the window: a longer one would skip more, but a table of more bytes of each
// form would say 0 in more places.
const maxWindow = 64

// New returns a Masker for the given secret values and their Forms. Values shorter than MinLen
// are ignored; duplicates count once.
func New(values ...string) *Masker {
	m := &Masker{}
	for _, v := range values {
		if len(v) >= MinLen && !slices.Contains(m.values, v) {
			m.values = append(m.values, v)
		}
	}
	return m
}

// build makes the forms of m's values and the tables that find them.
func (m *Masker) build() {
	seen := make(map[string]bool, len(m.values))
	for _, v := range m.values {
		for _, f := range Forms(v) {
			if seen[f] {
				continue
			}
			seen[f] = true
			m.forms = append(m.forms, []byte(f))
			m.maxLen = max(m.maxLen, len(f))
		}
	}
	if len(m.forms) == 0 {
		return
	}
	slices.SortStableFunc(m.forms, func(a, b []byte) int { return len(b) - len(a) })
	m.window = min(len(m.forms[len(m.forms)-1]), maxWindow)
	m.shift = new([1 << 14]uint8)
	for x := range m.shift {
		m.shift[x] = uint8(m.window - 1)
	}
	m.byPrefix = make(map[uint16][]int32)
	for i, f := range m.forms {
		m.first[f[0]] = true
		x := uint16(f[0]) | uint16(f[1])<<8
		m.byPrefix[x] = append(m.byPrefix[x], int32(i))
		// The two bytes ending at f[j] under the window's last two: the window can move
		// until f's start is under the window's.
		for j := 1; j < m.window; j++ {
			k := block(f[j-1], f[j])
			m.shift[k] = min(m.shift[k], uint8(m.window-1-j))
		}
	}
}

// Forms returns the strings masked for one secret value: the value, each line of it when it has
// several, and its base64, URL-encoded and JSON-escaped forms, each once, leaving out those
// shorter than their minimum (MinLen, MinLineLen, MinBase64Len). A value shorter than MinLen has
// no forms.
func Forms(value string) []string {
	if len(value) < MinLen {
		return nil
	}
	var forms []string
	seen := map[string]bool{}
	add := func(f string, minLen int) {
		if len(f) >= minLen && !seen[f] {
			seen[f] = true
			forms = append(forms, f)
		}
	}
	add(value, MinLen)
	if strings.ContainsAny(value, "\n\r") {
		for line := range strings.SplitSeq(strings.ReplaceAll(value, "\r", "\n"), "\n") {
			add(strings.Trim(line, " \t"), MinLineLen)
		}
	}
	for _, f := range jsonForms(value) {
		add(f, MinLen)
	}
	for _, f := range urlForms(value) {
		add(f, MinLen)
	}
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		add(enc.EncodeToString([]byte(value)), MinBase64Len)
		for offset := range 3 {
			add(base64Core(enc, value, offset), MinBase64Len)
		}
	}
	// base64 (coreutils) wraps its output every 76 characters, openssl every 64: a long value
	// encoded alone comes out as lines of these widths. Each line is a piece of the stable part
	// at alignment 0, the last possibly longer by the characters that depend on what follows.
	aligned := base64Core(base64.RawStdEncoding, value, 0)
	for _, width := range []int{76, 64} {
		for i := 0; len(aligned) > width && i < len(aligned); i += width {
			add(aligned[i:min(i+width, len(aligned))], MinBase64Len)
		}
	}
	return forms
}

// base64Core returns the characters of the base64 encoding of value, preceded in the stream by
// offset bytes (0, 1 or 2), that depend on value alone: the same whatever bytes come before and
// after it. A character stands for 6 bits; those wholly inside value's bits are the core.
func base64Core(enc *base64.Encoding, value string, offset int) string {
	b := make([]byte, offset+len(value))
	copy(b[offset:], value)
	e := enc.EncodeToString(b)
	start := (8*offset + 5) / 6          // the first character starting at or after value's first bit
	end := 8 * (offset + len(value)) / 6 // past the last character ending at or before its last bit
	if start >= end {
		return ""
	}
	return e[start:end]
}

// urlForms returns value percent-encoded as a query value (Go's QueryEscape: a space is "+"), as
// a path segment (Go's PathEscape), and with a space as "%20" and everything but letters, digits
// and "-._~" escaped (RFC 3986; Python's quote with safe=""), keeping "/" (Python's quote) or
// "!'()*" (JavaScript's encodeURIComponent).
func urlForms(value string) []string {
	query := url.QueryEscape(value)
	strict := strings.ReplaceAll(query, "+", "%20") // a "+" of value is "%2B" by now
	return []string{
		query, url.PathEscape(value), strict,
		strings.ReplaceAll(strict, "%2F", "/"),
		componentUnescaper.Replace(strict),
	}
}

// componentUnescaper turns RFC 3986 escaping into JavaScript's encodeURIComponent's.
var componentUnescaper = strings.NewReplacer("%21", "!", "%27", "'", "%28", "(", "%29", ")", "%2A", "*")

// jsonForms returns value escaped as a JSON string, without the quotes: as escaping the fewest
// characters writes it (JavaScript, Go without HTML escaping), with <, > and & escaped (Go's
// default), and with every non-ASCII character escaped (Python's default).
func jsonForms(value string) []string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(value); err != nil {
		return nil // a string always encodes
	}
	plain := strings.TrimSuffix(b.String(), "\n")
	plain = plain[1 : len(plain)-1]
	html, err := json.Marshal(value)
	if err != nil {
		return nil
	}
	var ascii strings.Builder
	for _, r := range plain {
		switch {
		case r < 0x80:
			ascii.WriteRune(r)
		case r > 0xffff:
			hi, lo := utf16.EncodeRune(r)
			fmt.Fprintf(&ascii, `\u%04x\u%04x`, hi, lo)
		default:
			fmt.Fprintf(&ascii, `\u%04x`, r)
		}
	}
	return []string{plain, string(html[1 : len(html)-1]), ascii.String()}
}

// String returns s with every secret value, in every form, replaced by Mask.
func (m *Masker) String(s string) string {
	if m == nil || len(m.values) == 0 {
		return s
	}
	var out bytes.Buffer
	out.Grow(len(s))
	m.mask(&out, []byte(s), 0, true)
	return out.String()
}

// mask writes the masked form of buf[:n] to out, where n is how much of buf is decided: all of
// it when final, else everything before the first of the last maxLen-1 bytes from which the rest
// of buf begins some form (undecided), since that form could end in bytes not yet seen: output
// that cannot begin a secret goes out at once, so a running order's log can be followed. covered says how many leading bytes of buf belong to a masked
// region whose Mask was already written. It returns n and the new covered count relative to
// buf[n:].
//
// Only occurrences starting before n matter: an occurrence starting at n or later covers no
// byte before n, and every one starting before n fits in buf (n+maxLen-1 <= len(buf)). The
// window visits the starts in order, so the occurrences come sorted by where they start.
func (m *Masker) mask(out *bytes.Buffer, buf []byte, covered int, final bool) (n, coveredAfter int) {
	m.once.Do(m.build)
	n = len(buf)
	if !final && m.maxLen > 1 {
		n = m.undecided(buf)
	}
	done := 0 // bytes of buf before done are written or covered
	if len(m.forms) > 0 {
		shift, w := m.shift, m.window
		// pos is the last byte under the window, which starts at pos-w+1.
		for pos := w - 1; pos < len(buf) && pos-w+1 < n; {
			if s := shift[block(buf[pos-1], buf[pos])]; s > 0 {
				pos += int(s)
				continue
			}
			start := pos - w + 1
			end := m.longestAt(buf, start, uint16(buf[start])|uint16(buf[start+1])<<8)
			pos++
			switch {
			case end < 0:
			case start < covered:
				covered = max(covered, end)
			default:
				out.Write(buf[max(done, covered):start])
				out.WriteString(Mask)
				done, covered = start, end
			}
		}
	}
	if lo := max(done, covered); lo < n {
		out.Write(buf[lo:n])
	}
	return n, max(0, covered-n)
}

// undecided returns where the bytes of buf that could still begin a form start: the first i
// among the last maxLen-1 such that buf[i:] is a proper prefix of some form, or len(buf).
func (m *Masker) undecided(buf []byte) int {
	for i := max(0, len(buf)-(m.maxLen-1)); i < len(buf); i++ {
		if !m.first[buf[i]] {
			continue
		}
		if i == len(buf)-1 {
			return i
		}
		for _, k := range m.byPrefix[uint16(buf[i])|uint16(buf[i+1])<<8] {
			if f := m.forms[k]; len(f) > len(buf)-i && bytes.Equal(f[:len(buf)-i], buf[i:]) {
				return i
			}
		}
	}
	return len(buf)
}

// longestAt returns the end of the longest form starting at buf[i], whose first two bytes are
// x, or -1 when none does.
func (m *Masker) longestAt(buf []byte, i int, x uint16) int {
	for _, k := range m.byPrefix[x] {
		f := m.forms[k]
		if len(buf)-i >= len(f) && bytes.Equal(buf[i:i+len(f)], f) {
			return i + len(f)
		}
	}
	return -1
}

// ErrClosed: a write to a masking writer after Close.
var ErrClosed = errors.New("masking writer closed")

// Writer returns a writer that masks what is written to it and passes it on to w. Up to the
// longest form's length minus one byte is held back until the next Write or Close; Close
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
