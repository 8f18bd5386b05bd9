package secreturl

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestRedacted(t *testing.T) {
	cases := []struct{ in, want string }{
		{"http://demo-teacher.distillery-demo.svc:8000/v1", "http://demo-teacher.distillery-demo.svc:8000/v1"},
		{"https://api.example.com/v1/", "https://api.example.com/v1/"},
		{"https://user:sk-secret123@api.example.com/v1", "https://redacted@api.example.com/v1"},
		{"https://sk-secret123@api.example.com/v1", "https://redacted@api.example.com/v1"},
		{"https://api.example.com/v1?api_key=sk-secret123&v=2", "https://api.example.com/v1?redacted"},
		{"https://api.example.com/v1#sk-secret123", "https://api.example.com/v1"},
		{"https://api.example.com/v1?", "https://api.example.com/v1?redacted"},
		{"https://u:sk-secret123@bad host/v1", "[redacted unparseable URL]"},
		{"mailto:sk-secret123@example.com", "mailto:[redacted]"},
	}
	for _, tc := range cases {
		if got := Redacted(tc.in); got != tc.want {
			t.Errorf("Redacted(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(Redacted(tc.in), "sk-secret123") {
			t.Errorf("Redacted(%q) keeps the key", tc.in)
		}
	}
}

func TestScrubRemovesTheKeyFromWhatGoAndServersPrint(t *testing.T) {
	endpoint := "https://user:sk-secret123@127.0.0.1:1/v1?api_key=sk%2Fquery456"
	// Go's own error for a request to the endpoint: it masks the password but keeps the user and query.
	req, err := http.NewRequest(http.MethodPost, endpoint+"/chat/completions", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, goErr := http.DefaultClient.Do(req)
	if goErr == nil {
		t.Fatal("a request to port 1 succeeded")
	}
	texts := []string{
		goErr.Error(),
		"teacher " + endpoint + " unreachable",
		`{"msg":"calling","url":"` + endpoint + `"}`,
		"server says: invalid api_key sk/query456 for user sk-secret123",
		"escaped: sk%2Fquery456 " + errors.New("sk-secret123").Error(),
	}
	for _, text := range texts {
		got := Scrub(text, endpoint)
		for _, secret := range []string{"sk-secret123", "query456"} {
			if strings.Contains(got, secret) {
				t.Errorf("Scrub(%q) = %q keeps %s", text, got, secret)
			}
		}
	}
	if got := Scrub("shard 3 failed after 5 attempts at http://teacher:8000/v1", "http://teacher:8000/v1"); got != "shard 3 failed after 5 attempts at http://teacher:8000/v1" {
		t.Errorf("Scrub changed text without secrets: %q", got)
	}
}
