package sealing_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strings"
	"testing"
	"testing/cryptotest"
	"time"

	"filippo.io/age"
	"github.com/getsops/sops/v3/version"

	"github.com/iac-ci/iac-ci/sealing"
)

// The fast Seal writes what sops writes: from the same random bytes and the same time, the very
// same bytes, for every kind of name sops escapes and for any number of recipients.
// (SetGlobalRandom makes crypto/rand deterministic, so the test cannot run in parallel.)
func TestFastSealIsSopsByteForByte(t *testing.T) {
	hybrid, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	oneRecipient := newSealer(t, newKey(t).Recipient)
	threeRecipients := newSealer(t, newKey(t).Recipient, newKey(t).Recipient, hybrid.Recipient().String())
	oddNames := map[string]string{
		`quote"and\backslash`: "v1",
		"<html>&amp;":         "v2",
		"a<b":                 "v2<",
		"a>b":                 "v2>",
		"a&b":                 "v2&",
		"tab\tnew\nline\x01":  "v3",
		"ünïcödé ✓":           "v4",
		"line\u2028sep\u2029": "v5",
		"invalid\xff\xfeutf8": "v6",
		"del\x7f":             "v7",
		"a:b":                 "",
		"X_unencrypted":       "v8",
		"long":                strings.Repeat("x<&>\"\\\n", 500),
	}
	envs := map[string]map[string]string{
		"sample":    sampleEnv(),
		"empty":     nil,
		"one":       {"A": "a"},
		"all empty": {"A": "", "B": ""},
		"odd names": oddNames,
		"bench":     benchEnv(),
	}
	times := []time.Time{
		time.Date(2024, 2, 29, 23, 59, 59, 999999999, time.UTC),
		time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("east", 5*3600+1800)),
	}
	for name, env := range envs {
		for _, s := range []*sealing.Sealer{oneRecipient, threeRecipients} {
			for _, now := range times {
				cryptotest.SetGlobalRandom(t, 7)
				fast, err := sealing.SealAt(s, env, now)
				if err != nil {
					t.Fatalf("%s: SealAt: %v", name, err)
				}
				cryptotest.SetGlobalRandom(t, 7)
				viaSops, err := sealing.SealSops(s, env, now)
				if err != nil {
					t.Fatalf("%s: SealSops: %v", name, err)
				}
				if !bytes.Equal(fast, viaSops) {
					t.Errorf("%s, %d recipients, %v: the fast Seal wrote\n%s\nsops wrote\n%s", name, len(s.Recipients()), now, fast, viaSops)
				}
			}
		}
	}
	// The same holds for the names Seal refuses: the same refusal.
	for _, env := range []map[string]string{{"sops": "v"}, {"": "v"}} {
		_, fastErr := sealing.SealAt(oneRecipient, env, times[0])
		_, sopsErr := sealing.SealSops(oneRecipient, env, times[0])
		if fastErr == nil || sopsErr == nil || fastErr.Error() != sopsErr.Error() {
			t.Errorf("Seal(%v): the fast Seal says %v, sops %v", keysOf(env), fastErr, sopsErr)
		}
	}
}

// What the fast Seal writes, sops reads: its decrypt API and the sops-based open give the
// variables back, for every recipient.
func TestFastSealOpensWithSops(t *testing.T) {
	run, caller := newKey(t), newKey(t)
	s := newSealer(t, run.Recipient, caller.Recipient)
	for _, env := range []map[string]string{sampleEnv(), nil, {"A": ""}} {
		doc := sealWith(t, s, env)
		if !sealing.FastShape(doc) {
			t.Fatalf("a document of Seal is not of the fast shape:\n%s", doc)
		}
		for name, k := range map[string]sealing.Key{"run key": run, "caller's sops_key": caller} {
			got, err := sealing.OpenSops(doc, k.Identity)
			if err != nil || !maps.Equal(got, env) {
				t.Errorf("sops-based open with %s: got %v (%v), want %v", name, keysOf(got), err, keysOf(env))
			}
			requireSopsDecrypts(t, doc, name, k.Identity, env)
		}
	}
}

// The documents sops itself writes (Seal's former path) open on the fast path, to the same
// variables as through sops.
func TestSopsSealedOpensFast(t *testing.T) {
	run, caller := newKey(t), newKey(t)
	s := newSealer(t, run.Recipient, caller.Recipient)
	opener := sealing.NewOpener(8)
	for _, env := range []map[string]string{sampleEnv(), nil, {"A": ""}, benchEnv()} {
		doc, err := sealing.SealSops(s, env, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if !sealing.FastShape(doc) {
			t.Fatalf("a document sops sealed is not of the fast shape:\n%s", doc)
		}
		for _, k := range []sealing.Key{run, caller} {
			want, err := sealing.OpenSops(doc, k.Identity)
			if err != nil {
				t.Fatalf("sops-based open: %v", err)
			}
			before := sealing.FastOpens()
			viaOpen, err1 := sealing.Open(doc, k.Identity)
			viaOpener, err2 := opener.Open(doc, k.Identity)
			if err1 != nil || err2 != nil || !maps.Equal(viaOpen, want) || !maps.Equal(viaOpener, want) || !maps.Equal(want, env) {
				t.Errorf("Open and Opener.Open: got %v (%v) and %v (%v), sops gives %v", keysOf(viaOpen), err1, keysOf(viaOpener), err2, keysOf(want))
			}
			if n := sealing.FastOpens() - before; n != 2 {
				t.Errorf("Open and Opener.Open took the fast path %d times, want 2", n)
			}
		}
	}
}

// tamperings change a document of Seal (of variables A, B and C) in its text, keeping it of the
// shape the fast open reads, so that it is the fast path that must refuse it.
func tamperings(t *testing.T, s *sealing.Sealer) map[string]func(doc string) string {
	other := sealWith(t, s, map[string]string{"A": "value-x", "D": "value-d"})
	otherValue := func(name string) string { return valueOf(t, other, name) }
	return map[string]func(doc string) string{
		"ciphertext changed": func(doc string) string {
			v := valueOf(t, []byte(doc), "A")
			data := strings.TrimPrefix(v, "ENC[AES256_GCM,data:")
			flipped := "B"
			if data[0] == 'B' {
				flipped = "C"
			}
			return strings.Replace(doc, v, "ENC[AES256_GCM,data:"+flipped+data[1:], 1)
		},
		"name changed":    func(doc string) string { return strings.Replace(doc, `"A": `, `"Z": `, 1) },
		"values swapped":  func(doc string) string { return swapValues(t, doc, "A", "B") },
		"lines reordered": func(doc string) string { return swapLines(t, doc, "A", "B") },
		"variable removed": func(doc string) string {
			return strings.Replace(doc, `  "B": "`+valueOf(t, []byte(doc), "B")+"\",\n", "", 1)
		},
		"variable added": func(doc string) string {
			return strings.Replace(doc, `  "sops": {`, `  "D": "`+otherValue("D")+"\",\n  \"sops\": {", 1)
		},
		"value of another document": func(doc string) string {
			return strings.Replace(doc, valueOf(t, []byte(doc), "A"), otherValue("A"), 1)
		},
		"value emptied": func(doc string) string {
			return strings.Replace(doc, valueOf(t, []byte(doc), "C"), "", 1)
		},
		"lastmodified changed": func(doc string) string {
			lm := metaOf(t, []byte(doc)).LastModified
			when, err := time.Parse(time.RFC3339, lm)
			if err != nil {
				t.Fatal(err)
			}
			return strings.Replace(doc, lm, when.Add(time.Second).Format(time.RFC3339), 1)
		},
		"mac of another document": func(doc string) string {
			return strings.Replace(doc, metaOf(t, []byte(doc)).MAC, metaOf(t, other).MAC, 1)
		},
		"mac changed": func(doc string) string {
			mac := metaOf(t, []byte(doc)).MAC
			i := len("ENC[AES256_GCM,data:")
			flipped := "B"
			if mac[i] == 'B' {
				flipped = "C"
			}
			return strings.Replace(doc, mac, mac[:i]+flipped+mac[i+1:], 1)
		},
	}
}

// The fast open refuses a tampered document as the sops-based open does: ErrMalformed, with the
// very same message.
func TestFastOpenRefusesTampering(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	s := newSealer(t, k.Recipient)
	opener := sealing.NewOpener(8)
	doc := string(sealWith(t, s, map[string]string{"A": "value-a", "B": "value-b", "C": "value-c"}))
	for name, tamper := range tamperings(t, s) {
		bad := []byte(tamper(doc))
		if string(bad) == doc {
			t.Fatalf("%s: the document did not change", name)
		}
		if !sealing.FastShape(bad) {
			t.Errorf("%s: the tampered document is not of the fast shape, so the fast path is not tested:\n%s", name, bad)
		}
		_, want := sealing.OpenSops(bad, k.Identity)
		if !errors.Is(want, sealing.ErrMalformed) {
			t.Errorf("%s: the sops-based open says %v, want ErrMalformed", name, want)
			continue
		}
		for how, open := range map[string]func([]byte, string) (map[string]string, error){"Open": sealing.Open, "Opener.Open": opener.Open} {
			got, err := open(bad, k.Identity)
			if !errors.Is(err, sealing.ErrMalformed) || got != nil {
				t.Errorf("%s: %s: got %d variables, %v; want ErrMalformed", name, how, len(got), err)
			} else if err.Error() != want.Error() {
				t.Errorf("%s: %s says %q, the sops-based open %q", name, how, err, want)
			}
		}
	}
	// The untouched document still opens, from the kept key too.
	for range 2 {
		if got, err := opener.Open([]byte(doc), k.Identity); err != nil || got["C"] != "value-c" {
			t.Errorf("Opener.Open of the untouched document: %v", err)
		}
	}
}

// An identity that is no recipient fails on the fast path as through sops: ErrWrongKey, with the
// same message, and nothing of the keys in it.
func TestFastOpenWrongKey(t *testing.T) {
	t.Parallel()
	run, caller, stranger := newKey(t), newKey(t), newKey(t)
	doc := sealWith(t, newSealer(t, run.Recipient, caller.Recipient), sampleEnv())
	if !sealing.FastShape(doc) {
		t.Fatal("a document of Seal is not of the fast shape")
	}
	_, want := sealing.OpenSops(doc, stranger.Identity)
	if !errors.Is(want, sealing.ErrWrongKey) {
		t.Fatalf("the sops-based open with a stranger's identity says %v, want ErrWrongKey", want)
	}
	opener := sealing.NewOpener(8)
	for how, open := range map[string]func([]byte, string) (map[string]string, error){"Open": sealing.Open, "Opener.Open": opener.Open} {
		got, err := open(doc, stranger.Identity)
		if !errors.Is(err, sealing.ErrWrongKey) || got != nil || err.Error() != want.Error() {
			t.Errorf("%s with a stranger's identity: got %d variables, %v; the sops-based open says %v", how, len(got), err, want)
		} else {
			assertNoSecrets(t, err.Error(), sampleEnv(), run.Identity, caller.Identity, stranger.Identity)
		}
	}
}

// Changes that keep a document valid for sops keep it valid on the fast path: the MAC covers
// neither the names nor the empty values, and sops reformats the last-modified time it parsed.
func TestFastOpenAcceptsWhatSopsAccepts(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	doc := string(sealWith(t, newSealer(t, k.Recipient), map[string]string{"A": "value-a", "B": ""}))
	lm := metaOf(t, []byte(doc)).LastModified
	when, err := time.Parse(time.RFC3339, lm)
	if err != nil {
		t.Fatal(err)
	}
	changes := map[string]string{
		"empty variable added":   strings.Replace(doc, `  "sops": {`, "  \"E\": \"\",\n  \"sops\": {", 1),
		"empty variable renamed": strings.Replace(doc, `"B": ""`, `"Z": ""`, 1),
		"empty variable removed": strings.Replace(doc, "  \"B\": \"\",\n", "", 1),
		"lastmodified respelled": strings.Replace(doc, lm, when.Format("2006-01-02T15:04:05.000")+"+00:00", 1),
		"variable given twice":   strings.Replace(doc, `  "sops": {`, "  \"B\": \"\",\n  \"sops\": {", 1),
		"metadata first":         moveMetadataFirst(t, doc),
		"compact":                compact(t, doc),
		"sops members reordered": strings.Replace(strings.Replace(doc, "    \"encrypted_regex\": \"^\",\n", "", 1),
			`"version":`, `"encrypted_regex": "^", "version":`, 1),
	}
	for name, changed := range changes {
		if changed == doc {
			t.Fatalf("%s: the document did not change", name)
		}
		if !sealing.FastShape([]byte(changed)) {
			t.Errorf("%s: not of the fast shape:\n%s", name, changed)
			continue
		}
		want, wantErr := sealing.OpenSops([]byte(changed), k.Identity)
		got, err := sealing.Open([]byte(changed), k.Identity)
		if wantErr != nil || err != nil || !maps.Equal(got, want) {
			t.Errorf("%s: Open gives %v (%v), the sops-based open %v (%v)", name, got, err, want, wantErr)
		}
	}
}

// Documents of any other shape go to sops, which opens or refuses them as it always has: the
// fast path is not taken, and Open gives what the sops-based open gives.
func TestOtherShapesFallBackToSops(t *testing.T) {
	k := newKey(t)
	doc := string(sealWith(t, newSealer(t, k.Recipient), map[string]string{"A": "value-a", "B": "value-b", "X_unencrypted": "value-x"}))
	meta := func(old, new string) string {
		if !strings.Contains(doc, old) {
			t.Fatalf("the document has no %q", old)
		}
		return strings.Replace(doc, old, new, 1)
	}
	head := `  "sops": {`
	metadata := func() string {
		return strings.TrimSuffix(doc[strings.Index(doc, head):], "\n}\n")
	}
	ageList := func() string {
		start := strings.Index(doc, `    "age": [`)
		end := strings.Index(doc, `    "encrypted_regex"`)
		return doc[start:end]
	}
	others := map[string]string{
		"mac_only_encrypted false":      meta(head, head+"\n    \"mac_only_encrypted\": false,"),
		"unknown metadata member":       meta(head, head+"\n    \"note\": \"hi\","),
		"a second encryption rule":      meta(head, head+"\n    \"unencrypted_suffix\": \"_plain\","),
		"mac spelled MAC":               meta(`"mac":`, `"MAC":`),
		"no encryption rule":            meta("    \"encrypted_regex\": \"^\",\n", ""),
		"no version":                    meta(",\n    \"version\": \""+version.Version+"\"", ""),
		"key groups":                    meta(ageList(), "    \"key_groups\": [{"+strings.TrimSuffix(strings.TrimSpace(ageList()), ",")+"}],\n"),
		"no age entry":                  meta(ageList(), "    \"age\": [],\n"),
		"lastmodified not RFC 3339":     meta(metaOf(t, []byte(doc)).LastModified, "yesterday"),
		"a number value":                meta(`  "sops": {`, "  \"N\": 5,\n  \"sops\": {"),
		"a value in clear":              meta(`  "sops": {`, "  \"N\": \"plain\",\n  \"sops\": {"),
		"a list value":                  meta(`  "sops": {`, "  \"N\": [],\n  \"sops\": {"),
		"metadata twice":                strings.Replace(doc, "\n}\n", ",\n"+metadata()+"\n}\n", 1),
		"an empty second metadata":      strings.Replace(doc, "\n}\n", ",\n  \"sops\": {}\n}\n", 1),
		"no metadata":                   doc[:strings.Index(doc, ",\n"+head)] + "\n}\n",
		"no metadata, a value in clear": `{"A": "plain"}`,
		"an age entry with another member": meta(`        "recipient":`, `        "note": "hi",
        "recipient":`),
		"a second document after it": doc + "{}\n",
		"not an object":              `["sops"]`,
		"not JSON":                   doc[:len(doc)/2],
	}
	for name, other := range others {
		if sealing.FastShape([]byte(other)) {
			t.Errorf("%s: taken for the fast shape:\n%s", name, other)
			continue
		}
		before := sealing.FastOpens()
		want, wantErr := sealing.OpenSops([]byte(other), k.Identity)
		for how, open := range map[string]func([]byte, string) (map[string]string, error){"Open": sealing.Open, "Opener.Open": sealing.NewOpener(4).Open} {
			got, err := open([]byte(other), k.Identity)
			if !maps.Equal(got, want) || fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Errorf("%s: %s gives %v (%v), the sops-based open %v (%v)", name, how, got, err, want, wantErr)
			}
		}
		if n := sealing.FastOpens() - before; n != 0 {
			t.Errorf("%s: the fast path was taken %d times", name, n)
		}
	}
}

// Every Open and Opener.Open of Seal's documents takes the fast path, the kept key included.
func TestSealDocumentsTakeFastPath(t *testing.T) {
	k := newKey(t)
	s := newSealer(t, k.Recipient)
	opener := sealing.NewOpener(4)
	before := sealing.FastOpens()
	const docs = 3
	for i := range docs {
		doc := sealWith(t, s, map[string]string{"I": fmt.Sprint(i)})
		if _, err := sealing.Open(doc, k.Identity); err != nil {
			t.Fatal(err)
		}
		if got, err := opener.Open(doc, k.Identity); err != nil || got["I"] != fmt.Sprint(i) {
			t.Fatalf("Opener.Open: %v, %v", got, err)
		}
	}
	if n := sealing.FastOpens() - before; n != 2*docs {
		t.Errorf("%d documents opened twice took the fast path %d times, want %d", docs, n, 2*docs)
	}
	if _, keys := sealing.OpenerLen(opener); keys != 1 {
		t.Errorf("the Opener keeps %d data keys, want 1", keys)
	}
}

var valueRE = regexp.MustCompile(`(?m)^  "([^"]*)": "([^"]*)",$`)

// valueOf returns the value of the top-level variable name as written in doc.
func valueOf(t *testing.T, doc []byte, name string) string {
	t.Helper()
	for _, m := range valueRE.FindAllSubmatch(doc, -1) {
		if string(m[1]) == name {
			return string(m[2])
		}
	}
	t.Fatalf("no variable %s in\n%s", name, doc)
	return ""
}

type docMeta struct {
	LastModified string `json:"lastmodified"`
	MAC          string `json:"mac"`
}

func metaOf(t *testing.T, doc []byte) docMeta {
	t.Helper()
	var top struct {
		Sops docMeta `json:"sops"`
	}
	if err := json.Unmarshal(doc, &top); err != nil || top.Sops.MAC == "" {
		t.Fatalf("no sops metadata (%v) in\n%s", err, doc)
	}
	return top.Sops
}

func swapValues(t *testing.T, doc, a, b string) string {
	va, vb := valueOf(t, []byte(doc), a), valueOf(t, []byte(doc), b)
	doc = strings.Replace(doc, va, "\x00", 1)
	doc = strings.Replace(doc, vb, va, 1)
	return strings.Replace(doc, "\x00", vb, 1)
}

func swapLines(t *testing.T, doc, a, b string) string {
	la := fmt.Sprintf("  %q: %q,\n", a, valueOf(t, []byte(doc), a))
	lb := fmt.Sprintf("  %q: %q,\n", b, valueOf(t, []byte(doc), b))
	return strings.Replace(doc, la+lb, lb+la, 1)
}

func moveMetadataFirst(t *testing.T, doc string) string {
	i := strings.Index(doc, `  "sops": {`)
	if i < 0 {
		t.Fatal("no metadata")
	}
	vars := strings.TrimSuffix(doc[len("{\n"):i], ",\n")
	meta := strings.TrimSuffix(doc[i:], "\n}\n")
	return "{\n" + meta + ",\n" + vars + "\n}\n"
}

func compact(t *testing.T, doc string) string {
	var out bytes.Buffer
	if err := json.Compact(&out, []byte(doc)); err != nil {
		t.Fatal(err)
	}
	return out.String()
}
