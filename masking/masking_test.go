package masking_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/iac-ci/iac-ci/masking"
)

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		values []string
		in     string
		want   string
	}{
		{"no values", nil, "nothing to hide", "nothing to hide"},
		{"one value", []string{"hunter2"}, "password=hunter2", "password=***"},
		{"every occurrence", []string{"s3cr3t"}, "s3cr3t and s3cr3t again", "*** and *** again"},
		{"several values", []string{"alpha-key", "beta-key"}, "a=alpha-key b=beta-key", "a=*** b=***"},
		{"value inside another is masked whole", []string{"abc", "xxabcxx"}, "[xxabcxx] [abc]", "[***] [***]"},
		{"overlapping values become one mask", []string{"abcd", "cdef"}, "..abcdef..", "..***.."},
		{"self-overlap", []string{"aaa"}, "aaaa b", "*** b"},
		{"adjacent occurrences stay two", []string{"abc"}, "abcabc", "******"},
		{"short values ignored", []string{"", "a", "10"}, "a 10 b", "a 10 b"},
		{"three bytes masked", []string{"xyz"}, "1xyz2", "1***2"},
		{"multi-byte runes", []string{"pässwörd"}, "pw: pässwörd.", "pw: ***."},
		{"duplicate values", []string{"dup-val", "dup-val"}, "dup-val", "***"},
		{"newline inside a value", []string{"line1\nline2"}, "x line1\nline2 y", "x *** y"},
		{"empty text", []string{"abc"}, "", ""},
		{"text shorter than a value", []string{"abcdef"}, "abc", "abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := masking.New(tt.values...)
			if got := m.String(tt.in); got != tt.want {
				t.Errorf("String(%q): got %q, want %q", tt.in, got, tt.want)
			}
			if got := naive(tt.values, tt.in); got != tt.want {
				t.Errorf("reference masker disagrees with the table: got %q, want %q", got, tt.want)
			}
			if got := streamed(t, m, tt.in, []int{1}); got != tt.want {
				t.Errorf("Writer, one byte per write: got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNilMasker(t *testing.T) {
	t.Parallel()
	var m *masking.Masker
	if got := m.String("abc"); got != "abc" {
		t.Errorf("nil Masker String: got %q, want %q", got, "abc")
	}
	var out bytes.Buffer
	w := m.Writer(&out)
	if _, err := w.Write([]byte("abc")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if out.String() != "abc" {
		t.Errorf("nil Masker Writer: got %q, want %q", out.String(), "abc")
	}
}

// A value split across two writes must not leak its first part, and the writer must hold back
// no more than what could still begin a form (here "secr"), so a live log keeps flowing.
func TestWriterSplitValue(t *testing.T) {
	t.Parallel()
	const secret = "secret-123" // its longest form is its base64, c2VjcmV0LTEyMw: 13 bytes held back
	m := masking.New(secret, "other")
	var out bytes.Buffer
	w := m.Writer(&out)

	if _, err := w.Write([]byte("the token: secr")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if got, want := out.String(), "the token: "; got != want {
		t.Fatalf("after the first write: got %q, want %q (all but the start of the value)", got, want)
	}
	if _, err := w.Write([]byte("et-123 done\n")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if strings.Contains(out.String(), "secr") {
		t.Fatalf("part of the value was written: %q", out.String())
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got, want := out.String(), "the token: *** done\n"; got != want {
		t.Fatalf("after Close: got %q, want %q", got, want)
	}
	if _, err := w.Write([]byte("late")); !errors.Is(err, masking.ErrClosed) {
		t.Errorf("Write after Close: got %v, want ErrClosed", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
}

// A masked region that runs past what one write could decide must swallow its tail in the next.
func TestWriterMaskSpansWrites(t *testing.T) {
	t.Parallel()
	m := masking.New("abcd", "cdefghij")
	got := streamed(t, m, "xxabcdefghijyy", []int{4, 1, 3})
	if want := "xx***yy"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

func TestWriterErrorIsSticky(t *testing.T) {
	t.Parallel()
	boom := errors.New("disk full")
	w := masking.New("abc").Writer(failingWriter{boom})
	if _, err := w.Write([]byte("hello world")); !errors.Is(err, boom) {
		t.Fatalf("Write: got %v, want %v", err, boom)
	}
	if _, err := w.Write([]byte("more")); !errors.Is(err, boom) {
		t.Errorf("second Write: got %v, want the first error again", err)
	}
	if err := w.Close(); !errors.Is(err, boom) {
		t.Errorf("Close: got %v, want the first error", err)
	}
}

func FuzzWriter(f *testing.F) {
	f.Add("password=hunter2 and hunter2", "hunter2", []byte{3, 1, 7})
	f.Add("..abcdef..abcd", "abcd|cdef", []byte{1, 1, 1, 1})
	f.Add("aaaaaaa", "aaa|aaaa", []byte{2})
	f.Add("xxabcdefghijyy", "abcd|cdefghij", []byte{4, 1, 3})
	f.Add("no secrets here", "", []byte{0})
	f.Add("pässwörd pässwörd", "sswö|pä", []byte{5, 2})
	f.Fuzz(func(t *testing.T, text, secrets string, cuts []byte) {
		values := strings.Split(secrets, "|")
		m := masking.New(values...)
		want := m.String(text)
		if ref := naive(values, text); want != ref {
			t.Fatalf("String(%q) with %q: got %q, reference masker says %q", text, values, want, ref)
		}
		sizes := make([]int, len(cuts))
		for i, c := range cuts {
			sizes[i] = int(c)
		}
		if got := streamed(t, m, text, sizes); got != want {
			t.Fatalf("Writer with writes of %v: got %q, want String's %q", sizes, got, want)
		}
		// Masking can only make a value appear again by way of the '*' it writes.
		if !strings.Contains(text, "*") {
			for _, v := range values {
				if len(v) >= masking.MinLen && !strings.Contains(v, "*") && strings.Contains(want, v) {
					t.Fatalf("value %q still appears in %q", v, want)
				}
			}
		}
	})
}

// streamed writes text through m.Writer in chunks of the given sizes (cycled; 0 means an empty
// write) and returns what came out after Close.
func streamed(t *testing.T, m *masking.Masker, text string, sizes []int) string {
	t.Helper()
	var out bytes.Buffer
	w := m.Writer(&out)
	rest := []byte(text)
	for i := 0; len(rest) > 0; i++ {
		n := 1
		if len(sizes) > 0 {
			n = min(sizes[i%len(sizes)], len(rest))
			if n == 0 && i > 4*len(text)+len(sizes) {
				n = 1 // all-zero sizes must still finish
			}
		}
		k, err := w.Write(rest[:n])
		if err != nil || k != n {
			t.Fatalf("Write(%d bytes): got %d, %v", n, k, err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return out.String()
}

// naive is a deliberately simple masker to check the real one against: walk the text byte by
// byte; an occurrence of any form of any value starting inside the current masked region
// extends it, one starting outside opens a new region written as a single mask.
func naive(values []string, text string) string {
	var forms []string
	for _, v := range values {
		forms = append(forms, masking.Forms(v)...)
	}
	var out strings.Builder
	maskEnd := 0
	for p := 0; p < len(text); p++ {
		end := -1
		for _, f := range forms {
			if strings.HasPrefix(text[p:], f) {
				end = max(end, p+len(f))
			}
		}
		switch {
		case p < maskEnd:
			maskEnd = max(maskEnd, end)
		case end >= 0:
			out.WriteString(masking.Mask)
			maskEnd = end
		default:
			out.WriteByte(text[p])
		}
	}
	return out.String()
}
