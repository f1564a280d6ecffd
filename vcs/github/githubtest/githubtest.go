// Package githubtest is a fake GitHub REST API for tests: an httptest server that speaks the real
// protocol of the few endpoints iac-ci uses (repository contents, pull requests and their files,
// issue comments, commit statuses), with GitHub's pagination (per_page, page and a Link header),
// its token check and its size limits. Tests seed it with files and pull requests and read back
// the calls made and the comments and statuses left.
//
// Response shapes follow GitHub's REST reference (docs.github.com/en/rest): contents as base64 in
// lines of 60 characters, errors as {"message", "documentation_url"}, 422 for a comment body over
// 65536 characters or a status description over 140.
package githubtest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// Token is the token the server accepts, as "Authorization: Bearer <Token>" or "token <Token>".
const Token = "githubtest-token"

// Call is one request the server received.
type Call struct {
	Method string
	Path   string // the decoded URL path, e.g. /repos/o/r/issues/2/comments
	Query  string // the raw query
}

// Comment is an issue comment as stored.
type Comment struct {
	ID   int64
	Body string
}

// Status is a commit status as posted.
type Status struct {
	State       string
	TargetURL   string
	Description string
	Context     string
}

// Server is the fake. It is safe for concurrent use.
type Server struct {
	srv *httptest.Server

	mu       sync.Mutex
	calls    []Call
	files    map[string]string // repo "\x00" ref "\x00" path → content
	pulls    map[string]json.RawMessage
	prFiles  map[string][]string
	comments map[string][]*Comment // repo#number → comments in creation order
	statuses map[string][]Status   // repo@sha → statuses in creation order
	failures map[string]int        // method " " path → HTTP status to answer with
	nextID   int64
}

// NewServer starts a fake GitHub, closed when the test ends.
func NewServer(t *testing.T) *Server {
	s := &Server{
		files:    map[string]string{},
		pulls:    map[string]json.RawMessage{},
		prFiles:  map[string][]string{},
		comments: map[string][]*Comment{},
		statuses: map[string][]Status{},
		failures: map[string]int{},
		nextID:   1000,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /repos/{owner}/{repo}/contents/{path...}", s.getContents)
	mux.HandleFunc("GET /repos/{owner}/{repo}/pulls/{number}", s.getPull)
	mux.HandleFunc("GET /repos/{owner}/{repo}/pulls/{number}/files", s.listPullFiles)
	mux.HandleFunc("GET /repos/{owner}/{repo}/issues/{number}/comments", s.listComments)
	mux.HandleFunc("POST /repos/{owner}/{repo}/issues/{number}/comments", s.createComment)
	mux.HandleFunc("PATCH /repos/{owner}/{repo}/issues/comments/{id}", s.editComment)
	mux.HandleFunc("POST /repos/{owner}/{repo}/statuses/{sha}", s.createStatus)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// A call the fake does not know means the code under test uses an endpoint no test covers.
		t.Errorf("githubtest: no fake for %s %s", r.Method, r.URL.Path)
		writeError(w, http.StatusNotFound, "Not Found")
	})
	s.srv = httptest.NewServer(s.guard(mux))
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the API root, with the trailing slash go-github requires.
func (s *Server) URL() string { return s.srv.URL + "/" }

// SetFile stores a file of repo ("owner/name") at ref (a sha or branch, matched exactly).
func (s *Server) SetFile(repo, ref, path, content string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[repo+"\x00"+ref+"\x00"+strings.TrimPrefix(path, "/")] = content
}

// SetPullRequest stores the JSON GitHub returns for a pull request, such as the pull_request
// object of a webhook delivery.
func (s *Server) SetPullRequest(repo string, number int, prJSON []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pulls[issueKey(repo, number)] = slices.Clone(prJSON)
}

// SetPRFiles stores the names of the files a pull request changes.
func (s *Server) SetPRFiles(repo string, number int, files []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prFiles[issueKey(repo, number)] = slices.Clone(files)
}

// AddComment adds a comment to an issue or pull request as if someone had written it, and
// returns its id.
func (s *Server) AddComment(repo string, number int, body string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addComment(issueKey(repo, number), body).ID
}

// DeleteComment removes a comment, as someone deleting it on GitHub would.
func (s *Server) DeleteComment(repo string, number int, id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := issueKey(repo, number)
	s.comments[key] = slices.DeleteFunc(s.comments[key], func(c *Comment) bool { return c.ID == id })
}

// Fail makes every later request with this method and path (e.g. "POST",
// "/repos/o/r/statuses/abc") answer with the HTTP status code; 0 removes the failure.
func (s *Server) Fail(method, path string, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == 0 {
		delete(s.failures, method+" "+path)
		return
	}
	s.failures[method+" "+path] = code
}

// Calls returns the requests received so far, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Comments returns the current comments of an issue or pull request, oldest first.
func (s *Server) Comments(repo string, number int) []Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Comment
	for _, c := range s.comments[issueKey(repo, number)] {
		out = append(out, *c)
	}
	return out
}

// Statuses returns the statuses posted for a commit, oldest first.
func (s *Server) Statuses(repo, sha string) []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.statuses[repo+"@"+sha])
}

func issueKey(repo string, number int) string { return repo + "#" + strconv.Itoa(number) }

func repoOf(r *http.Request) string { return r.PathValue("owner") + "/" + r.PathValue("repo") }

// guard records each call, checks the token and applies configured failures.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls = append(s.calls, Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery})
		code := s.failures[r.Method+" "+r.URL.Path]
		s.mu.Unlock()

		auth := r.Header.Get("Authorization")
		if auth != "Bearer "+Token && auth != "token "+Token {
			writeError(w, http.StatusUnauthorized, "Bad credentials")
			return
		}
		if code != 0 {
			writeError(w, code, http.StatusText(code))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) getContents(w http.ResponseWriter, r *http.Request) {
	path := r.PathValue("path")
	s.mu.Lock()
	content, ok := s.files[repoOf(r)+"\x00"+r.URL.Query().Get("ref")+"\x00"+path]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	name := path[strings.LastIndexByte(path, '/')+1:]
	writeJSON(w, http.StatusOK, map[string]any{
		"type":     "file",
		"encoding": "base64",
		"size":     len(content),
		"name":     name,
		"path":     path,
		"sha":      fmt.Sprintf("%040x", len(content)),
		"content":  wrapLines(base64.StdEncoding.EncodeToString([]byte(content)), 60),
	})
}

func (s *Server) getPull(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.PathValue("number"))
	s.mu.Lock()
	pr, ok := s.pulls[issueKey(repoOf(r), n)]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(pr)
}

func (s *Server) listPullFiles(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.PathValue("number"))
	key := issueKey(repoOf(r), n)
	s.mu.Lock()
	names, ok := s.prFiles[key]
	_, isPull := s.pulls[key]
	s.mu.Unlock()
	if !ok && !isPull {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	files := make([]map[string]any, 0, len(names))
	for _, name := range names {
		files = append(files, map[string]any{
			"sha": fmt.Sprintf("%040x", len(name)), "filename": name, "status": "modified",
			"additions": 1, "deletions": 0, "changes": 1,
		})
	}
	writePage(w, r, files)
}

func (s *Server) listComments(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.PathValue("number"))
	s.mu.Lock()
	var page []map[string]any
	for _, c := range s.comments[issueKey(repoOf(r), n)] {
		page = append(page, commentJSON(s.srv.URL, repoOf(r), n, c))
	}
	s.mu.Unlock()
	writePage(w, r, page)
}

func (s *Server) createComment(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.PathValue("number"))
	var in struct {
		Body *string `json:"body"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	if in.Body == nil || *in.Body == "" {
		writeError(w, http.StatusUnprocessableEntity, "Validation Failed: body is missing")
		return
	}
	if utf8.RuneCountInString(*in.Body) > 65536 {
		writeError(w, http.StatusUnprocessableEntity, "Validation Failed: Body is too long (maximum is 65536 characters)")
		return
	}
	s.mu.Lock()
	c := s.addComment(issueKey(repoOf(r), n), *in.Body)
	out := commentJSON(s.srv.URL, repoOf(r), n, c)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) editComment(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	var in struct {
		Body *string `json:"body"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	if in.Body == nil || *in.Body == "" {
		writeError(w, http.StatusUnprocessableEntity, "Validation Failed: body is missing")
		return
	}
	if utf8.RuneCountInString(*in.Body) > 65536 {
		writeError(w, http.StatusUnprocessableEntity, "Validation Failed: Body is too long (maximum is 65536 characters)")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prefix := repoOf(r) + "#"
	for key, list := range s.comments {
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		for _, c := range list {
			if c.ID == id {
				c.Body = *in.Body
				n, _ := strconv.Atoi(strings.TrimPrefix(key, prefix))
				writeJSON(w, http.StatusOK, commentJSON(s.srv.URL, repoOf(r), n, c))
				return
			}
		}
	}
	writeError(w, http.StatusNotFound, "Not Found")
}

func (s *Server) createStatus(w http.ResponseWriter, r *http.Request) {
	var in struct {
		State       string `json:"state"`
		TargetURL   string `json:"target_url"`
		Description string `json:"description"`
		Context     string `json:"context"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	switch in.State {
	case "pending", "success", "failure", "error":
	default:
		writeError(w, http.StatusUnprocessableEntity, "Validation Failed: state is not included in the list")
		return
	}
	if utf8.RuneCountInString(in.Description) > 140 {
		writeError(w, http.StatusUnprocessableEntity, "Validation Failed: description is too long (maximum is 140 characters)")
		return
	}
	if in.Context == "" {
		in.Context = "default"
	}
	st := Status{State: in.State, TargetURL: in.TargetURL, Description: in.Description, Context: in.Context}
	s.mu.Lock()
	key := repoOf(r) + "@" + r.PathValue("sha")
	s.statuses[key] = append(s.statuses[key], st)
	s.nextID++
	id := s.nextID
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{
		"id": id, "state": st.State, "target_url": st.TargetURL, "description": st.Description,
		"context": st.Context, "created_at": time.Now().UTC().Format(time.RFC3339),
	})
}

// addComment must be called with s.mu held.
func (s *Server) addComment(key, body string) *Comment {
	s.nextID++
	c := &Comment{ID: s.nextID, Body: body}
	s.comments[key] = append(s.comments[key], c)
	return c
}

func commentJSON(base, repo string, number int, c *Comment) map[string]any {
	return map[string]any{
		"id":         c.ID,
		"node_id":    "IC_" + strconv.FormatInt(c.ID, 10),
		"body":       c.Body,
		"html_url":   fmt.Sprintf("%s/%s/pull/%d#issuecomment-%d", base, repo, number, c.ID),
		"issue_url":  fmt.Sprintf("%s/repos/%s/issues/%d", base, repo, number),
		"user":       map[string]any{"login": "iac-ci[bot]", "type": "Bot"},
		"created_at": "2024-01-01T00:00:00Z",
		"updated_at": "2024-01-01T00:00:00Z",
	}
}

// writePage answers a list request the way GitHub paginates: page and per_page (default 30,
// at most 100) select the items, and a Link header names the next, last, first and previous
// pages.
func writePage[T any](w http.ResponseWriter, r *http.Request, items []T) {
	q := r.URL.Query()
	perPage, err := strconv.Atoi(q.Get("per_page"))
	if err != nil || perPage <= 0 {
		perPage = 30
	}
	perPage = min(perPage, 100)
	page, err := strconv.Atoi(q.Get("page"))
	if err != nil || page <= 0 {
		page = 1
	}
	last := max(1, (len(items)+perPage-1)/perPage)
	from := min((page-1)*perPage, len(items))
	to := min(from+perPage, len(items))

	link := func(p int, rel string) string {
		u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path}
		v := url.Values{}
		v.Set("per_page", strconv.Itoa(perPage))
		v.Set("page", strconv.Itoa(p))
		u.RawQuery = v.Encode()
		return fmt.Sprintf("<%s>; rel=%q", u.String(), rel)
	}
	var links []string
	if page < last {
		links = append(links, link(page+1, "next"), link(last, "last"))
	}
	if page > 1 {
		links = append(links, link(1, "first"), link(page-1, "prev"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	out := items[from:to]
	if out == nil {
		out = []T{}
	}
	writeJSON(w, http.StatusOK, out)
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON")
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, message string) {
	writeJSON(w, code, map[string]string{
		"message":           message,
		"documentation_url": "https://docs.github.com/rest",
	})
}

func wrapLines(s string, width int) string {
	var b strings.Builder
	for len(s) > width {
		b.WriteString(s[:width])
		b.WriteByte('\n')
		s = s[width:]
	}
	b.WriteString(s)
	b.WriteByte('\n')
	return b.String()
}
