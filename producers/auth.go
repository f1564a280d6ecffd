package producers

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Errors of the read and control routes' authentication, answered 401 (see statusOf).
var (
	ErrNoToken = errors.New("authentication required: send Authorization: Bearer <API token> " +
		"(the token serve was started with, --api-token or IAC_CI_API_TOKEN), or open the signed link a pull-request comment carries")
	ErrBadToken = errors.New("wrong API token: send Authorization: Bearer <API token>, the token serve was started with")
	ErrBadLink  = errors.New("link not valid for this request: it is expired, altered, or for another run " +
		"(a signed link opens the status of its own run, read-only); ask for a fresh one or use the API token")
	// ErrNoTokenConfigured: the server has no API token and nothing in front of it checks
	// callers, so it answers no read or control request rather than every one.
	ErrNoTokenConfigured = errors.New("this server has no API token: start serve with --api-token or IAC_CI_API_TOKEN " +
		"(or --insecure-skip-signature, for local experiments only)")
)

// DefaultLinkTTL is how long a signed run link stays valid when Server.LinkTTL is zero. A pull
// request's comment is rewritten with fresh links only while its run changes, so its links must
// outlive the run by as long as people read the comment.
const DefaultLinkTTL = 30 * 24 * time.Hour

// linkStep rounds a link's expiry up, so that the link stays the same for a while: a comment
// whose body did not change is not edited again for a new link alone.
const linkStep = time.Hour

// linkParam is the query parameter that carries a signed run link's capability.
const linkParam = "t"

// guard is the one authentication of every read and control route: a request passes with
// Authorization: Bearer <API token>, or, for a GET or HEAD of one run (a route with {run_id}),
// with a signed link for that run (LinkToken) that has not expired. Register a route through
// routes.guarded to get it.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.authorize(r); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="iac-ci"`)
			s.fail(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) authorize(r *http.Request) error {
	if s.Insecure && len(s.APIToken) == 0 {
		return nil // local experiments: serve refuses to start this way without --insecure-skip-signature
	}
	if s.GuardedUpstream {
		// API Gateway checked the caller's SigV4 signature (IAM), which takes the Authorization
		// header a Bearer token would need, before the request got here.
		return nil
	}
	if len(s.APIToken) == 0 {
		return ErrNoTokenConfigured
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return ErrNoToken
		}
		// Hashes of equal length are compared, so that the time taken tells nothing of the
		// token, its length included.
		got, want := sha256.Sum256([]byte(strings.TrimSpace(token))), sha256.Sum256(s.APIToken)
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return ErrBadToken
		}
		return nil
	}
	t := r.URL.Query().Get(linkParam)
	if t == "" {
		return ErrNoToken
	}
	runID := r.PathValue("run_id")
	if runID == "" || (r.Method != http.MethodGet && r.Method != http.MethodHead) || !s.validLink(runID, t) {
		return ErrBadLink
	}
	return nil
}

// LinkToken returns the capability a link to runID's status carries (as ?t=), valid for
// LinkTTL, or "" when the server has no API token to derive its key from (every route is then
// open, or guarded by something in front of it).
func (s *Server) LinkToken(runID string) string {
	if len(s.APIToken) == 0 {
		return ""
	}
	ttl := s.LinkTTL
	if ttl <= 0 {
		ttl = DefaultLinkTTL
	}
	exp := s.now().Add(ttl).Truncate(linkStep).Add(linkStep).Unix()
	return strconv.FormatInt(exp, 10) + "." + base64.RawURLEncoding.EncodeToString(s.linkMAC(runID, exp))
}

// RunLinkQuery is LinkToken as a query string to append to a run's URL: "?t=..." or "".
func (s *Server) RunLinkQuery(runID string) string {
	if t := s.LinkToken(runID); t != "" {
		return "?" + linkParam + "=" + t
	}
	return ""
}

func (s *Server) validLink(runID, token string) bool {
	expText, macText, ok := strings.Cut(token, ".")
	if !ok {
		return false
	}
	exp, err := strconv.ParseInt(expText, 10, 64)
	if err != nil || s.now().Unix() >= exp {
		return false
	}
	mac, err := base64.RawURLEncoding.DecodeString(macText)
	return err == nil && hmac.Equal(mac, s.linkMAC(runID, exp))
}

// linkMAC signs a run id and an expiry with a key derived from the API token, so that a link
// never reveals the token and a new token voids every link.
func (s *Server) linkMAC(runID string, exp int64) []byte {
	kdf := hmac.New(sha256.New, s.APIToken)
	kdf.Write([]byte("iac-ci run link key v1"))
	mac := hmac.New(sha256.New, kdf.Sum(nil))
	mac.Write([]byte(runID))
	mac.Write([]byte{0})
	mac.Write([]byte(strconv.FormatInt(exp, 10)))
	return mac.Sum(nil)
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}
