package masking_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/iac-ci/iac-ci/masking"
)

// benchPEM is a made-up private key of the usual size: 25 lines of 64 base64 characters.
func benchPEM() string {
	r := rand.New(rand.NewPCG(1, 2))
	body := make([]byte, 1200)
	for i := range body {
		body[i] = byte(r.UintN(256))
	}
	enc := base64.StdEncoding.EncodeToString(body)
	var b strings.Builder
	b.WriteString("-----BEGIN RSA PRIVATE KEY-----\n")
	for len(enc) > 64 {
		b.WriteString(enc[:64] + "\n")
		enc = enc[64:]
	}
	b.WriteString(enc + "\n-----END RSA PRIVATE KEY-----\n")
	return b.String()
}

const (
	benchCallback = "https://iac-ci-internal.s3.eu-west-1.amazonaws.com/callbacks/20260314T091502Z-3f9a0c1b2d4e5f60/0002/1/result.json?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAEXAMPLE%2F20260314%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Date=20260314T091502Z&X-Amz-Expires=7200&X-Amz-SignedHeaders=host&X-Amz-Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
	benchDBPass   = "Pg-pr0d-pa55word!with/slash"
	benchToken    = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
)

// benchLog is about 1 MiB of what a plan prints: resource lines, attribute lines, an
// occasional line of base64 (user_data), and now and then a secret (one line in 500).
func benchLog(secrets []string) []byte {
	r := rand.New(rand.NewPCG(3, 4))
	var b strings.Builder
	for i := 0; b.Len() < 1<<20; i++ {
		switch i % 7 {
		case 0:
			fmt.Fprintf(&b, "  # aws_instance.web[%d] will be created\n  + resource \"aws_instance\" \"web\" {\n", i)
		case 3:
			blob := make([]byte, 90)
			for k := range blob {
				blob[k] = byte(r.UintN(256))
			}
			fmt.Fprintf(&b, "      + user_data = %q\n", base64.StdEncoding.EncodeToString(blob))
		default:
			fmt.Fprintf(&b, "      + tags = {\n          + \"Name\" = \"web-%d\"\n        }\n      + ami = \"ami-%08x\"\n", i, r.Uint32())
		}
		if i%500 == 250 && len(secrets) > 0 {
			fmt.Fprintf(&b, "leaked: %s\n", secrets[i%len(secrets)])
		}
	}
	return []byte(b.String())
}

var benchSets = []struct {
	name    string
	secrets []string
}{
	// Every order masks at least its callback URL.
	{"callback-url", []string{benchCallback}},
	{"three-secrets", []string{benchCallback, benchDBPass, benchToken}},
	{"three-secrets-and-a-pem-key", []string{benchCallback, benchDBPass, benchToken, benchPEM()}},
	// The shortest form sets how far the search may skip: a 6-byte secret is near the worst.
	{"a-short-secret", []string{benchCallback, "x9!k2q"}},
}

// BenchmarkWriter masks a log the way a worker does: streamed through Writer in the 32 KiB
// writes of the output pipe's copy.
func BenchmarkWriter(b *testing.B) {
	for _, set := range benchSets {
		b.Run(set.name, func(b *testing.B) {
			m := masking.New(set.secrets...)
			log := benchLog(set.secrets)
			b.SetBytes(int64(len(log)))
			b.ReportAllocs()
			for b.Loop() {
				w := m.Writer(io.Discard)
				for rest := log; len(rest) > 0; {
					n := min(32<<10, len(rest))
					if _, err := w.Write(rest[:n]); err != nil {
						b.Fatal(err)
					}
					rest = rest[n:]
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNew is what making a masker and masking a short log costs, once per order.
func BenchmarkNew(b *testing.B) {
	for _, set := range benchSets {
		b.Run(set.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				masking.New(set.secrets...).String("+ terraform plan\nNo changes.\n")
			}
		})
	}
}
