package sealing

import (
	"fmt"
	"time"

	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/version"
)

// sealSops seals env with s's data key through sops's own tree, cipher and JSON store, with now
// as the last-modified time: the way Sealer.Seal sealed before it wrote documents itself. The
// tests hold the fast Seal to it, byte for byte.
func (s *Sealer) sealSops(env map[string]string, now time.Time) ([]byte, error) {
	names, err := sortedNames(env)
	if err != nil {
		return nil, err
	}
	branch := make(sops.TreeBranch, 0, len(names))
	for _, name := range names {
		branch = append(branch, sops.TreeItem{Key: name, Value: env[name]})
	}
	group := make(sops.KeyGroup, len(s.wrapped))
	for i, k := range s.wrapped {
		group[i] = &sopsage.MasterKey{Recipient: k.recipient, EncryptedKey: k.enc}
	}
	tree := sops.Tree{
		Branches: sops.TreeBranches{branch},
		Metadata: sops.Metadata{
			KeyGroups:      []sops.KeyGroup{group},
			EncryptedRegex: everyKey,
			Version:        version.Version,
		},
	}
	// The rest of `sops encrypt` (common.EncryptTree): the values encrypted with the data key,
	// each with a fresh random IV (a new aes.Cipher has no IVs stashed to reuse), and the MAC
	// over the cleartext encrypted with the last-modified time as additional data.
	cipher := aes.NewCipher()
	mac, err := tree.Encrypt(s.dataKey, cipher)
	if err != nil {
		return nil, fmt.Errorf("seal: encrypt values: %w", err)
	}
	tree.Metadata.LastModified = now.UTC()
	tree.Metadata.MessageAuthenticationCode, err = cipher.Encrypt(mac, s.dataKey, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		return nil, fmt.Errorf("seal: encrypt mac: %w", err)
	}
	doc, err := jsonStore().EmitEncryptedFile(tree)
	if err != nil {
		return nil, fmt.Errorf("seal: write document: %w", err)
	}
	return doc, nil
}
