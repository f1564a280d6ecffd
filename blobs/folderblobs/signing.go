package folderblobs

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The query parameters of a presigned URL.
const (
	paramExpires   = "X-Expires"
	paramSignature = "X-Signature"
)

// Errors of a presigned request that Handler answers with 403.
var (
	errBadSignature = errors.New("signature does not match")
	errExpired      = errors.New("presigned URL expired")
)

// PresignPut returns a URL that accepts HTTP PUTs of key's body until expiry passes.
func (b *Bucket) PresignPut(ctx context.Context, key string, expiry time.Duration) (string, error) {
	return b.presign(http.MethodPut, key, expiry)
}

// PresignGet returns a URL that answers HTTP GET with key's body until expiry passes.
func (b *Bucket) PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error) {
	return b.presign(http.MethodGet, key, expiry)
}

func (b *Bucket) presign(method, key string, expiry time.Duration) (string, error) {
	if err := checkKey(key); err != nil {
		return "", fmt.Errorf("presign %s: %w", method, err)
	}
	if expiry <= 0 {
		return "", fmt.Errorf("presign %s %s: expiry %v is not positive", method, key, expiry)
	}
	var base string
	if b.baseURL != nil {
		base = strings.TrimSuffix(b.baseURL(), "/")
	}
	if base == "" {
		return "", fmt.Errorf("presign %s %s: the blob server's base URL is not known yet", method, key)
	}
	// Rounded up to a whole second, so a URL never lives shorter than asked.
	expires := b.now().Add(expiry).Add(time.Second - time.Nanosecond).Unix()
	q := url.Values{}
	q.Set(paramExpires, strconv.FormatInt(expires, 10))
	q.Set(paramSignature, hex.EncodeToString(b.sign(method, key, expires)))
	return base + objectPath(b.name, key) + "?" + q.Encode(), nil
}

// objectPath is the path Handler serves key of bucket under.
func objectPath(bucket, key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "/blobs/" + url.PathEscape(bucket) + "/" + strings.Join(segs, "/")
}

// sign is the HMAC-SHA256 of one grant. The fields are joined with newlines: only the key may
// hold one, and it sits between two fields that cannot, so no two grants sign the same text.
func (b *Bucket) sign(method, key string, expires int64) []byte {
	mac := hmac.New(sha256.New, b.key)
	fmt.Fprintf(mac, "%s\n%s\n%s\n%d", method, b.name, key, expires)
	return mac.Sum(nil)
}

// verify checks a presigned request's signature, then its expiry.
func (b *Bucket) verify(method, key string, q url.Values) error {
	expires, err := strconv.ParseInt(q.Get(paramExpires), 10, 64)
	if err != nil {
		return fmt.Errorf("%s: %w", paramExpires, errBadSignature)
	}
	sig, err := hex.DecodeString(q.Get(paramSignature))
	if err != nil {
		return fmt.Errorf("%s: %w", paramSignature, errBadSignature)
	}
	if !hmac.Equal(sig, b.sign(method, key, expires)) {
		return errBadSignature
	}
	if !b.now().Before(time.Unix(expires, 0)) {
		return errExpired
	}
	return nil
}

const (
	signingKeyFile  = ".signing-key"
	signingKeyBytes = 32
)

// loadOrCreateSigningKey reads <dir>/.signing-key, creating it with a random key when missing.
// Processes sharing dir may race to create it: the key is written to a temporary file and
// linked into place, which fails if another process got there first, and then its key is used.
func loadOrCreateSigningKey(dir string) ([]byte, error) {
	path := filepath.Join(dir, signingKeyFile)
	key, err := readSigningKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key = make([]byte, signingKeyBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("make signing key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, signingKeyFile+"-*")
	if err != nil {
		return nil, fmt.Errorf("make signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := write(tmp, bytes.NewReader(key), true); err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readSigningKey(path)
		}
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	return key, nil
}

func readSigningKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	if len(key) < signingKeyBytes {
		return nil, fmt.Errorf("signing key file %s holds %d bytes, want %d: remove it to make a new one (outstanding URLs stop working)", signingKeyFile, len(key), signingKeyBytes)
	}
	return key, nil
}
