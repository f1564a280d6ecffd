package sealing

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"sync"

	"filippo.io/age"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/keyservice"
	"google.golang.org/grpc"
)

// Opener opens bundles as Open does, with the same results and errors, on the same fast path
// for the documents of the shape Seal writes and with sops for any other, but keeps what is
// costly to redo: the identities it parsed and the data keys it unwrapped (age's X25519). The
// bundles of one run's orders, sealed by one Sealer, share one wrapped data key, so a worker
// that opens many of them unwraps it once. Both paths take their data keys from what it keeps.
//
// A data key is kept under a SHA-256 of the identity that unwrapped it, the recipient it was
// wrapped for and the wrapped key itself, so it is only ever handed to that same identity, for
// that same wrapped key: an identity that is no recipient of a bundle still fails with
// ErrWrongKey, whatever another identity opened before. Identities are kept under their
// SHA-256, never as themselves. A kept data key only spares the unwrapping: every Open still
// decrypts the values and checks the MAC, so a tampered bundle fails as it would without it.
//
// The zero Opener keeps nothing; a nil *Opener opens as Open does. An Opener is safe for
// concurrent use.
type Opener struct {
	max  int
	mu   sync.Mutex
	ids  map[[sha256.Size]byte]*age.X25519Identity
	keys map[[sha256.Size]byte][]byte
}

// NewOpener returns an Opener that keeps at most maxKeys identities and at most maxKeys data
// keys; when one of them is full, an entry chosen at random makes room for the new one. A
// maxKeys of zero or less keeps nothing.
func NewOpener(maxKeys int) *Opener {
	return &Opener{
		max:  maxKeys,
		ids:  make(map[[sha256.Size]byte]*age.X25519Identity),
		keys: make(map[[sha256.Size]byte][]byte),
	}
}

// Open decrypts a bundle with one age identity, checks its MAC and returns the variables, as
// Open does.
func (o *Opener) Open(doc []byte, identity string) (map[string]string, error) {
	if o == nil || o.max <= 0 {
		return Open(doc, identity)
	}
	idHash := sha256.Sum256([]byte(strings.TrimSpace(identity)))
	o.mu.Lock()
	id, ok := o.ids[idHash]
	o.mu.Unlock()
	if !ok {
		var err error
		if id, err = parseIdentity(identity); err != nil {
			return nil, err
		}
		o.mu.Lock()
		put(o.ids, idHash, id, o.max)
		o.mu.Unlock()
	}
	return open(doc, &cachingService{o: o, idHash: idHash, ids: sopsage.ParsedIdentities{id}})
}

// put adds k to m, first removing an entry (the one map iteration meets first, which Go
// randomizes) when m already holds max.
func put[V any](m map[[sha256.Size]byte]V, k [sha256.Size]byte, v V, max int) {
	if _, ok := m[k]; !ok && len(m) >= max {
		for old := range m {
			delete(m, old)
			if len(m) < max {
				break
			}
		}
	}
	m[k] = v
}

// cachingService unwraps data keys with one identity, as identityService does, keeping them in
// its Opener.
type cachingService struct {
	o      *Opener
	idHash [sha256.Size]byte
	ids    sopsage.ParsedIdentities
}

// keyOf names a data key: the identity that unwraps it, and what it unwraps. Each part but the
// last is of fixed size or prefixed with its length, so no two triples give the same input.
func (s *cachingService) keyOf(recipient string, wrapped []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write(s.idHash[:])
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(recipient))))
	h.Write([]byte(recipient))
	h.Write(wrapped)
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

func (s *cachingService) Decrypt(_ context.Context, req *keyservice.DecryptRequest, _ ...grpc.CallOption) (*keyservice.DecryptResponse, error) {
	return decryptWith(s, req)
}

// unwrapDataKey returns the data key the Opener keeps for this identity, recipient and wrapped
// key, or unwraps it and keeps it. The caller gets a copy of its own.
func (s *cachingService) unwrapDataKey(recipient string, wrapped []byte) ([]byte, error) {
	k := s.keyOf(recipient, wrapped)
	s.o.mu.Lock()
	plain, ok := s.o.keys[k]
	s.o.mu.Unlock()
	if ok {
		return slices.Clone(plain), nil
	}
	// A failure is not kept: an identity that is no recipient unwraps nothing, and tries again.
	plain, err := unwrap(s.ids, recipient, wrapped)
	if err != nil {
		return nil, err
	}
	s.o.mu.Lock()
	put(s.o.keys, k, slices.Clone(plain), s.o.max)
	s.o.mu.Unlock()
	return plain, nil
}

func (s *cachingService) Encrypt(context.Context, *keyservice.EncryptRequest, ...grpc.CallOption) (*keyservice.EncryptResponse, error) {
	return nil, errors.New("cachingService only decrypts")
}
