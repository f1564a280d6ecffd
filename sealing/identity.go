package sealing

import (
	"context"
	"errors"

	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/keyservice"
	"google.golang.org/grpc"
)

// identityService is a SOPS key service that unwraps data keys with identities it was handed.
// SOPS's own local key service finds age identities only through SOPS_AGE_KEY* variables and
// files, which are process-wide; injecting parsed identities into each master key is the way the
// sops age package offers for a key service that holds its own (age/keysource.go,
// ParsedIdentities.ApplyToMasterKey).
type identityService struct {
	ids sopsage.ParsedIdentities
}

var errNotAge = errors.New("only age keys can be used")

// keyUnwrapper unwraps the data keys of documents with the identity an Open was given. It serves
// sops as a key service, for the documents left to sops, and the fast open directly: both go
// through unwrapDataKey, so a data key is unwrapped, and kept, alike on either path.
type keyUnwrapper interface {
	keyservice.KeyServiceClient
	// unwrapDataKey returns the data key wrapped (an armored age file) for recipient.
	unwrapDataKey(recipient string, wrapped []byte) ([]byte, error)
}

func (s identityService) Decrypt(_ context.Context, req *keyservice.DecryptRequest, _ ...grpc.CallOption) (*keyservice.DecryptResponse, error) {
	return decryptWith(s, req)
}

// decryptWith answers sops's request for a data key with u, which serves age keys only.
func decryptWith(u keyUnwrapper, req *keyservice.DecryptRequest) (*keyservice.DecryptResponse, error) {
	ak := req.GetKey().GetAgeKey()
	if ak == nil {
		return nil, errNotAge
	}
	plain, err := u.unwrapDataKey(ak.GetRecipient(), req.GetCiphertext())
	if err != nil {
		return nil, err
	}
	return &keyservice.DecryptResponse{Plaintext: plain}, nil
}

// unwrapDataKey unwraps the data key with the service's identities, every time: Open keeps
// nothing between documents.
func (s identityService) unwrapDataKey(recipient string, wrapped []byte) ([]byte, error) {
	return unwrap(s.ids, recipient, wrapped)
}

// unwrap decrypts a data key wrapped for recipient (an armored age file) with ids.
func unwrap(ids sopsage.ParsedIdentities, recipient string, wrapped []byte) ([]byte, error) {
	mk := sopsage.MasterKey{Recipient: recipient, EncryptedKey: string(wrapped)}
	ids.ApplyToMasterKey(&mk)
	return mk.Decrypt()
}

func (s identityService) Encrypt(context.Context, *keyservice.EncryptRequest, ...grpc.CallOption) (*keyservice.EncryptResponse, error) {
	return nil, errors.New("identityService only decrypts")
}
