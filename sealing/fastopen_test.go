package sealing

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// parseSealedWithDecoder is parseSealed written with encoding/json's own decoder, read token by
// token as sops's JSON store reads a document, and its metadata decoded into a map as sops
// decodes it: the reading parseSealed must agree with. It takes a document that has two
// members of one name in the "sops" object, the first of them not of the shape, where
// parseSealed leaves it to sops; otherwise the two take the same documents.
func parseSealedWithDecoder(doc []byte) (sealedDoc, bool) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return sealedDoc{}, false
	}
	var d sealedDoc
	metadata := false
	for dec.More() {
		t, err := dec.Token()
		name, ok := t.(string)
		if err != nil || !ok {
			return sealedDoc{}, false
		}
		if name == "sops" {
			var m map[string]any
			if metadata || dec.Decode(&m) != nil || !d.metadataFromMap(m) {
				return sealedDoc{}, false
			}
			metadata = true
			continue
		}
		t, err = dec.Token()
		value, ok := t.(string)
		if err != nil || !ok {
			return sealedDoc{}, false
		}
		var v encryptedString
		if value != "" {
			if v, ok = parseEncryptedString(value); !ok {
				return sealedDoc{}, false
			}
		}
		d.names = append(d.names, name)
		d.values = append(d.values, v)
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return sealedDoc{}, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return sealedDoc{}, false
	}
	return d, metadata
}

func (d *sealedDoc) metadataFromMap(m map[string]any) bool {
	if len(m) != 5 || m["encrypted_regex"] != everyKey {
		return false
	}
	if _, ok := m["version"].(string); !ok {
		return false
	}
	mac, ok := m["mac"].(string)
	if !ok {
		return false
	}
	if d.mac, ok = parseEncryptedString(mac); !ok {
		return false
	}
	lastModified, ok := m["lastmodified"].(string)
	if !ok {
		return false
	}
	t, err := time.Parse(time.RFC3339, lastModified)
	if err != nil {
		return false
	}
	entries, ok := m["age"].([]any)
	if !ok || len(entries) == 0 {
		return false
	}
	d.recipients = make([]wrappedKey, len(entries))
	for i, e := range entries {
		entry, ok := e.(map[string]any)
		if !ok || len(entry) != 2 {
			return false
		}
		recipient, ok1 := entry["recipient"].(string)
		enc, ok2 := entry["enc"].(string)
		if !ok1 || !ok2 {
			return false
		}
		d.recipients[i] = wrappedKey{recipient: recipient, enc: enc}
	}
	d.lastModified = t.Format(time.RFC3339)
	return true
}

// checkParseSealed fails t if parseSealed takes doc and encoding/json's decoder reads it
// otherwise. Where want is set, parseSealed must also take doc.
func checkParseSealed(t *testing.T, doc []byte, want bool) (taken bool) {
	t.Helper()
	got, ok := parseSealed(doc)
	ref, refOK := parseSealedWithDecoder(doc)
	if ok && (!refOK || !reflect.DeepEqual(got, ref)) {
		t.Fatalf("parseSealed read %q\nas %+v\nencoding/json's decoder: %+v (%v)", doc, got, ref, refOK)
	}
	if want && !ok {
		t.Fatalf("parseSealed does not take %q (encoding/json's decoder: %v)", doc, refOK)
	}
	return ok
}

// sealedSamples are documents of the fast shape as Seal and sops write them and as a person
// may have respelled them: parseSealed must take each.
func sealedSamples(t testing.TB) [][]byte {
	k1, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSealer(k1.Recipient, k2.Recipient)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"A": "value-a", "EMPTY": "", "ünï ✓": "v", `q"\`: "w", "<&>": "x", "tab\t": "y", "\u2028": "z"}
	var docs [][]byte
	for _, e := range []map[string]string{env, nil, {"A": ""}} {
		doc, err := s.Seal(e)
		if err != nil {
			t.Fatal(err)
		}
		viaSops, err := s.sealSops(e, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, doc); err != nil {
			t.Fatal(err)
		}
		text := string(doc)
		docs = append(docs, doc, viaSops, compact.Bytes(),
			[]byte(strings.ReplaceAll(text, "\n", "\r\n\t")),
			[]byte(" \n"+text+"\n\n "),
			[]byte(strings.Replace(text, `"sops"`, `"\u0073ops"`, 1)),
			[]byte(strings.Replace(text, `"mac"`, `"m\u0061c"`, 1)),
			[]byte(strings.Replace(text, `"lastmodified": "`, `"lastmodified": "2001-02-03T04:05:06Z", "lastmodified": "`, 1)),
			[]byte(strings.ReplaceAll(text, "/", `\/`)),
			[]byte(strings.Replace(text, `"age": [`, `"version": "x", "age": [`, 1)))
	}
	return docs
}

func TestParseSealedAgreesWithDecoder(t *testing.T) {
	t.Parallel()
	samples := sealedSamples(t)
	for _, doc := range samples {
		checkParseSealed(t, doc, true)
	}
	// Documents changed at random, as a fuzzer would: whatever parseSealed takes of them, the
	// decoder reads alike.
	rng := rand.New(rand.NewPCG(3, 4))
	taken := 0
	for range 20_000 {
		doc := mutate(rng, samples[rng.IntN(len(samples))])
		if checkParseSealed(t, doc, false) {
			taken++
		}
	}
	if taken < 1000 {
		t.Fatalf("parseSealed took only %d of the changed documents: the test tries too few", taken)
	}
}

func FuzzParseSealed(f *testing.F) {
	for _, doc := range sealedSamples(f) {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		checkParseSealed(t, doc, false)
	})
}

// mutate returns a copy of doc with a few random changes: JSON's delimiters and escapes, a
// value of another type, bytes or a line (a member, in an indented document) removed, bytes
// repeated or replaced.
func mutate(rng *rand.Rand, doc []byte) []byte {
	pieces := []string{`"`, `\`, `,`, `:`, `{`, `}`, `[`, `]`, ` `, "\n", "\v", "\f", "\u00a0", `\u0041`, `\"`, `\n`, "\xff", "\x01", "é",
		`null`, `1`, `true`, `"x"`, `""`, `[]`, `{}`, `"sops": {}`, `"age"`, `"mac"`, `"A": "",`, `ENC[`, `,type:str]`}
	out := bytes.Clone(doc)
	for range 1 + rng.IntN(3) {
		i := rng.IntN(len(out) + 1)
		switch rng.IntN(5) {
		case 0:
			out = append(out[:i:i], append([]byte(pieces[rng.IntN(len(pieces))]), out[i:]...)...)
		case 1:
			j := min(len(out), i+1+rng.IntN(8))
			out = append(out[:i:i], out[j:]...)
		case 2:
			j := min(len(out), i+1+rng.IntN(40))
			out = append(out[:j:j], append(bytes.Clone(out[i:j]), out[j:]...)...)
		case 3:
			if i < len(out) {
				out[i] = "\"\\,:{}[] a0=+/\n"[rng.IntN(15)]
			}
		case 4:
			start := bytes.LastIndexByte(out[:i], '\n')
			end := bytes.IndexByte(out[i:], '\n')
			if start >= 0 && end >= 0 {
				out = append(out[:start:start], out[i+end:]...)
			}
		}
	}
	return out
}
