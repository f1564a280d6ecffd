package githubtest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

func do(t *testing.T, method, url, auth, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestTokenIsRequired(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.SetFile("o/r", "main", "a.txt", "hi")
	for auth, want := range map[string]int{
		"":                     http.StatusUnauthorized,
		"Bearer wrong":         http.StatusUnauthorized,
		"Bearer " + Token:      http.StatusOK,
		"token " + Token:       http.StatusOK,
		"Basic " + Token + "x": http.StatusUnauthorized,
	} {
		resp, _ := do(t, "GET", s.URL()+"repos/o/r/contents/a.txt?ref=main", auth, "")
		if resp.StatusCode != want {
			t.Errorf("Authorization %q: got %d, want %d", auth, resp.StatusCode, want)
		}
	}
}

func TestContents(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	content := strings.Repeat("orders: []\n", 20)
	s.SetFile("o/r", "abc", "dir/.iac-ci.yml", content)

	resp, body := do(t, "GET", s.URL()+"repos/o/r/contents/dir/.iac-ci.yml?ref=abc", "Bearer "+Token, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var file struct {
		Type, Encoding, Content, Path string
		Size                          int
	}
	if err := json.Unmarshal(body, &file); err != nil {
		t.Fatal(err)
	}
	decoded, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(file.Content, "\n", ""))
	if err != nil || string(decoded) != content {
		t.Fatalf("content: got %q (%v), want %q", decoded, err, content)
	}
	if file.Type != "file" || file.Encoding != "base64" || file.Size != len(content) || file.Path != "dir/.iac-ci.yml" {
		t.Errorf("metadata: got %+v", file)
	}
	if !strings.Contains(file.Content, "\n") {
		t.Errorf("content is not in lines, as GitHub sends it")
	}

	if resp, _ := do(t, "GET", s.URL()+"repos/o/r/contents/dir/.iac-ci.yml?ref=other", "Bearer "+Token, ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("another ref: got %d, want 404", resp.StatusCode)
	}
}

func TestPagination(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	var files []string
	for i := range 45 {
		files = append(files, fmt.Sprintf("f%02d", i))
	}
	s.SetPRFiles("o/r", 3, files)

	var got []string
	next := s.URL() + "repos/o/r/pulls/3/files?per_page=20"
	pages := 0
	for next != "" {
		resp, body := do(t, "GET", next, "Bearer "+Token, "")
		var page []struct{ Filename string }
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		if len(page) > 20 {
			t.Fatalf("page of %d items, want at most per_page=20", len(page))
		}
		for _, f := range page {
			got = append(got, f.Filename)
		}
		pages++
		next = ""
		for _, link := range strings.Split(resp.Header.Get("Link"), ",") {
			if strings.Contains(link, `rel="next"`) {
				next = strings.Trim(strings.TrimSpace(strings.Split(link, ";")[0]), "<>")
			}
		}
	}
	if pages != 3 || strings.Join(got, ",") != strings.Join(files, ",") {
		t.Fatalf("got %d pages with %v, want 3 pages with every file in order", pages, got)
	}
}

func TestCommentsAndStatuses(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	resp, body := do(t, "POST", s.URL()+"repos/o/r/issues/4/comments", "Bearer "+Token, `{"body":"hello"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	var created struct{ ID int64 }
	_ = json.Unmarshal(body, &created)
	resp, _ = do(t, "PATCH", fmt.Sprintf("%srepos/o/r/issues/comments/%d", s.URL(), created.ID), "Bearer "+Token, `{"body":"edited"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("edit: %d", resp.StatusCode)
	}
	if got := s.Comments("o/r", 4); len(got) != 1 || got[0].Body != "edited" || got[0].ID != created.ID {
		t.Fatalf("comments: got %v", got)
	}
	tooLong, _ := json.Marshal(map[string]string{"body": strings.Repeat("é", 65537)})
	if resp, _ := do(t, "POST", s.URL()+"repos/o/r/issues/4/comments", "Bearer "+Token, string(tooLong)); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("a body over 65536 characters: got %d, want 422", resp.StatusCode)
	}

	resp, _ = do(t, "POST", s.URL()+"repos/o/r/statuses/abc", "Bearer "+Token, `{"state":"pending","context":"iac-ci","description":"d","target_url":"https://x"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status: %d", resp.StatusCode)
	}
	if resp, _ := do(t, "POST", s.URL()+"repos/o/r/statuses/abc", "Bearer "+Token, `{"state":"done"}`); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("unknown state: got %d, want 422", resp.StatusCode)
	}
	long := fmt.Sprintf(`{"state":"success","description":%q}`, strings.Repeat("x", 141))
	if resp, _ := do(t, "POST", s.URL()+"repos/o/r/statuses/abc", "Bearer "+Token, long); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("description over 140 characters: got %d, want 422", resp.StatusCode)
	}
	want := Status{State: "pending", TargetURL: "https://x", Description: "d", Context: "iac-ci"}
	if got := s.Statuses("o/r", "abc"); len(got) != 1 || got[0] != want {
		t.Fatalf("statuses: got %v, want [%v]", got, want)
	}
	if calls := s.Calls(); len(calls) != 6 || calls[0] != (Call{Method: "POST", Path: "/repos/o/r/issues/4/comments"}) {
		t.Errorf("calls: got %v", calls)
	}
}
