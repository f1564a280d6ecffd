package masking_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/iac-ci/iac-ci/masking"
)

// testPEM is a made-up key shaped like a real one: header, base64 lines, footer.
const testPEM = `-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDz1k0Qd4H2G9Tq3LxXjT3nqF0lYkz0f5f8u6vVw2bJ8wAAAJj0sW6b9LFu
mwAAAAtzc2gtZWQyNTUxOQAAACDz1k0Qd4H2G9Tq3LxXjT3nqF0lYkz0f5f8u6vVw2bJ8w
-----END OPENSSH PRIVATE KEY-----`

// Every line of a multi-line secret is masked on its own, however the output indents it (a
// plan diff shows a key inside a heredoc) and whatever its line endings.
func TestMultiLineSecretLineByLine(t *testing.T) {
	t.Parallel()
	lines := strings.Split(testPEM, "\n")
	var plan strings.Builder
	plan.WriteString("  + private_key_pem = <<-EOT\n")
	for _, l := range lines {
		plan.WriteString("        " + l + "\n")
	}
	plan.WriteString("    EOT\n")
	crlf := strings.ReplaceAll(testPEM, "\n", "\r\n")
	for name, secret := range map[string]string{"LF": testPEM, "CRLF": crlf, "trailing newline": testPEM + "\n"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := masking.New(secret)
			got := m.String(plan.String())
			for _, l := range lines {
				if strings.Contains(got, l) {
					t.Errorf("line %q shows in:\n%s", l, got)
				}
			}
			if want := "        ***\n"; strings.Count(got, want) != len(lines) {
				t.Errorf("want each of the %d lines masked as %q, got:\n%s", len(lines), want, got)
			}
			if !strings.HasPrefix(got, "  + private_key_pem = <<-EOT\n") || !strings.HasSuffix(got, "    EOT\n") {
				t.Errorf("text around the key changed:\n%s", got)
			}
			if s := streamed(t, m, plan.String(), []int{7}); s != got {
				t.Errorf("Writer: got %q, want String's %q", s, got)
			}
		})
	}
}

// Lines shorter than MinLineLen are not masked on their own: a JSON key file's braces would
// otherwise mask every brace of every log. The secret as a whole still is.
func TestMultiLineSecretShortLines(t *testing.T) {
	t.Parallel()
	secret := "{\n  \"private_key\": \"k3y-mat3rial-0123\",\n  \"id\": 7\n}"
	m := masking.New(secret)
	log := "resource {\n}\n" + secret + "\n" + `  "id": 7` + "\n}\n"
	got := m.String(log)
	want := "resource {\n}\n***\n  ***\n}\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	for _, f := range masking.Forms(secret) {
		if f == "{" || f == "}" {
			t.Errorf("Forms lists the line %q", f)
		}
	}
}

// encodings are the ways a value is printed that the masker must catch, each written by the
// standard library's own encoder, not by the masker's code.
var encodings = []struct {
	name   string
	encode func(string) string
}{
	{"base64", func(v string) string { return base64.StdEncoding.EncodeToString([]byte(v)) }},
	{"base64 unpadded", func(v string) string { return base64.RawStdEncoding.EncodeToString([]byte(v)) }},
	{"base64 URL alphabet", func(v string) string { return base64.URLEncoding.EncodeToString([]byte(v)) }},
	{"base64 URL alphabet unpadded", func(v string) string { return base64.RawURLEncoding.EncodeToString([]byte(v)) }},
	{"URL query escaping", url.QueryEscape},
	{"URL path escaping", url.PathEscape},
	{"URL escaping of all but unreserved characters", func(v string) string { return strings.ReplaceAll(url.QueryEscape(v), "+", "%20") }},
	{"JSON", func(v string) string {
		b, _ := json.Marshal(v)
		return string(b)
	}},
	{"JSON without HTML escaping", func(v string) string {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(v)
		return strings.TrimSpace(b.String())
	}},
	{"JSON ASCII only", asciiJSON},
}

// asciiJSON escapes as Python's json.dumps does by default: every non-ASCII character as \uXXXX.
func asciiJSON(v string) string {
	b, _ := json.Marshal(v)
	var out strings.Builder
	for _, r := range string(b) {
		switch {
		case r < 0x80:
			out.WriteRune(r)
		case r > 0xffff:
			hi, lo := utf16.EncodeRune(r)
			fmt.Fprintf(&out, `\u%04x\u%04x`, hi, lo)
		default:
			fmt.Fprintf(&out, `\u%04x`, r)
		}
	}
	return out.String()
}

var encodedSecrets = []string{
	"hunter2-but-longer",
	"p@ss w/rd&x=1+2?<ok>",
	`quote"back\slash` + "\ttab",
	"pässwörd-ünïcödé-🔑",
	"\xff\xfebinary\x00bytes",
	testPEM,
	"abcd", // short: only its literal and plain forms reach the minimums
}

// Each encoding of each secret, printed alone, is masked: what is left is the mask and at
// most the padding and the characters that carry a few bits of the secret's last byte.
func TestEncodedFormsAreMasked(t *testing.T) {
	t.Parallel()
	for _, secret := range encodedSecrets {
		m := masking.New(secret)
		for _, e := range encodings {
			encoded := e.encode(secret)
			got := m.String("value: " + encoded + " end")
			rest, ok := strings.CutPrefix(got, "value: ")
			rest, ok2 := strings.CutSuffix(rest, " end")
			if !ok || !ok2 {
				t.Errorf("%s of %q: the text around it changed: %q", e.name, secret, got)
				continue
			}
			if len(secret) < 5 && strings.HasPrefix(e.name, "base64") {
				continue // shorter than MinBase64Len
			}
			rest = strings.Trim(rest, `"`) // JSON's quotes are not the secret's
			if !strings.HasPrefix(rest, masking.Mask) || len(strings.TrimRight(strings.TrimPrefix(rest, masking.Mask), "=")) > 2 {
				t.Errorf("%s of %q: got %q, want %s and at most two characters and padding after it (encoded %q)", e.name, secret, rest, masking.Mask, encoded)
			}
		}
	}
}

// A secret inside a longer base64 stream, at any of the three byte alignments, and in base64
// tools' wrapped output, leaves nothing from which 4 bytes of it can be decoded. The check
// decodes what is left between masks at every character offset, so it does not depend on how
// the masker finds the secret.
func TestBase64InsideAStream(t *testing.T) {
	t.Parallel()
	for _, secret := range []string{"db-password-0123456789", "pässwörd-ünïcödé-🔑", testPEM} {
		m := masking.New(secret)
		for before := range 6 {
			for after := range 4 {
				stream := strings.Repeat("<", before) + secret + strings.Repeat(">", after)
				for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
					requireNoWindow(t, secret, enc, m.String(enc.EncodeToString([]byte(stream))))
				}
			}
		}
		// base64 wraps at 76 characters, openssl at 64; echo adds a newline to the secret.
		for _, width := range []int{76, 64} {
			for _, tail := range []string{"", "\n"} {
				enc := base64.StdEncoding.EncodeToString([]byte(secret + tail))
				var wrapped strings.Builder
				for len(enc) > width {
					wrapped.WriteString(enc[:width] + "\n")
					enc = enc[width:]
				}
				wrapped.WriteString(enc + "\n")
				got := m.String(wrapped.String())
				for line := range strings.SplitSeq(got, "\n") {
					requireNoWindow(t, secret, base64.StdEncoding, line)
				}
				requireNoWindow(t, secret, base64.StdEncoding, strings.ReplaceAll(got, "\n", ""))
			}
		}
	}
}

// requireNoWindow fails when any 4 consecutive bytes of secret can be decoded from a piece of
// masked between the masks.
func requireNoWindow(t *testing.T, secret string, enc *base64.Encoding, masked string) {
	t.Helper()
	for piece := range strings.SplitSeq(masked, masking.Mask) {
		piece = strings.TrimRight(piece, "=")
		for off := range 4 {
			if off > len(piece) {
				break
			}
			p := piece[off:]
			p = p[:len(p)/4*4]
			decoded, err := enc.DecodeString(p)
			if err != nil {
				continue
			}
			for k := 0; k+4 <= len(secret); k++ {
				if bytes.Contains(decoded, []byte(secret[k:k+4])) {
					t.Fatalf("bytes %d..%d of the secret (%q) decode from %q, left in:\n%s", k, k+4, secret[k:k+4], piece, masked)
				}
			}
		}
	}
}

func TestForms(t *testing.T) {
	t.Parallel()
	if f := masking.Forms("ab"); f != nil {
		t.Errorf("Forms of a value under MinLen: got %q, want none", f)
	}
	f := masking.Forms("a/b c")
	for _, want := range []string{"a/b c", "a%2Fb+c", "a%2Fb%20c", "a/b%20c", "YS9iIGM"} {
		if !slices.Contains(f, want) {
			t.Errorf("Forms(%q) lacks %q: %q", "a/b c", want, f)
		}
	}
	seen := map[string]bool{}
	for _, x := range f {
		if seen[x] {
			t.Errorf("Forms(%q) lists %q twice", "a/b c", x)
		}
		seen[x] = true
	}
}
