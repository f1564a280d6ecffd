package sealing

import (
	"time"

	sopsage "github.com/getsops/sops/v3/age"
)

// OpenerLen reports how many identities and data keys o keeps.
func OpenerLen(o *Opener) (identities, dataKeys int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.ids), len(o.keys)
}

// SealAt seals as s.Seal does, with now as the last-modified time.
func SealAt(s *Sealer, env map[string]string, now time.Time) ([]byte, error) {
	return s.sealAt(env, now)
}

// SealSops seals through sops's tree and JSON store, as Sealer.Seal did before it wrote
// documents itself.
func SealSops(s *Sealer, env map[string]string, now time.Time) ([]byte, error) {
	return s.sealSops(env, now)
}

// OpenSops opens doc through sops's JSON store and tree alone, never on the fast path.
func OpenSops(doc []byte, identity string) (map[string]string, error) {
	id, err := parseIdentity(identity)
	if err != nil {
		return nil, err
	}
	return openSops(doc, identityService{ids: sopsage.ParsedIdentities{id}})
}

// FastShape reports whether doc has the shape the fast open reads.
func FastShape(doc []byte) bool {
	_, ok := parseSealed(doc)
	return ok
}

// FastOpens reports how many documents were opened on the fast path so far.
func FastOpens() uint64 {
	return fastOpens.Load()
}
