package faketeacher

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/distillery-dev/distillery/internal/annotator/parse"
	"github.com/distillery-dev/distillery/internal/annotator/prompt"
)

// ask posts one chat request for input and returns the status and the answer text.
func ask(t *testing.T, url, input string) (int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"model": "m", "messages": prompt.Build(CompareTask(), input)})
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Choices []struct{ Message struct{ Content string } }
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if len(out.Choices) == 0 {
		return resp.StatusCode, ""
	}
	return resp.StatusCode, out.Choices[0].Message.Content
}

func TestTheSyntheticTaskIsAnsweredCorrectlyInTheCoTFormat(t *testing.T) {
	srv := httptest.NewServer(&Server{})
	defer srv.Close()
	for _, pair := range [][2]int{{17, 42}, {908, 77}, {5, 5}, {-3, 0}} {
		input := CompareInput(pair[0], pair[1])
		status, text := ask(t, srv.URL, input)
		if status != http.StatusOK {
			t.Fatalf("status %d", status)
		}
		ans, err := parse.Parse(CompareTask(), text)
		if err != nil || ans.Label != CompareLabel(pair[0], pair[1]) {
			t.Errorf("answer %q parses to %+v, %v; want %s", text, ans, err, CompareLabel(pair[0], pair[1]))
		}
		for _, n := range pair {
			if !strings.Contains(ans.Rationale, strconv.Itoa(n)) {
				t.Errorf("rationale %q does not state %d", ans.Rationale, n)
			}
		}
	}
}

func TestGarbageAnswersAreUnparseable(t *testing.T) {
	for _, fault := range []Fault{NoMarker, LabelOutsideSet} {
		srv := httptest.NewServer(&Server{Script: Always(Reply{Fault: fault})})
		_, text := ask(t, srv.URL, CompareInput(1, 2))
		srv.Close()
		if _, err := parse.Parse(CompareTask(), text); err == nil {
			t.Errorf("fault %d answered %q, which parses", fault, text)
		}
	}
}

func TestDemoScriptInjectsFaults(t *testing.T) {
	script := DemoScript(DemoFaults{FailFirstN: 2, GarbageFraction: 1})
	for n := 1; n <= 4; n++ {
		r := script(Request{N: n})
		if (n <= 2) != (r.Fault == ServerError) {
			t.Errorf("request %d: fault %d", n, r.Fault)
		}
		if n > 2 && r.Fault != NoMarker && r.Fault != LabelOutsideSet {
			t.Errorf("request %d should be garbage, got fault %d", n, r.Fault)
		}
	}
	if r := DemoScript(DemoFaults{TooManyFor: 1 << 40})(Request{N: 1}); r.Fault != TooManyRequests || r.RetryAfter <= 0 {
		t.Errorf("during the 429 window: %+v", r)
	}
	if r := DemoScript(DemoFaults{})(Request{N: 1}); r.Fault != Good {
		t.Errorf("no faults: %+v", r)
	}
}

func TestWriteCompareDatasetIsReproducible(t *testing.T) {
	var a, b bytes.Buffer
	WriteCompareDataset(&a, 50, 9)
	WriteCompareDataset(&b, 50, 9)
	if a.String() != b.String() || strings.Count(a.String(), "\n") != 50 {
		t.Error("the same seed should give the same 50 lines")
	}
}

func TestAHugeAnswerIsAValidCompletionOfTheAskedSize(t *testing.T) {
	for _, declare := range []bool{false, true} {
		srv := httptest.NewServer(&Server{Script: Always(Reply{Fault: HugeAnswer, Size: 100 << 10, DeclareLength: declare})})
		status, text := ask(t, srv.URL, CompareInput(1, 2))
		srv.Close()
		if status != http.StatusOK || len(text) != 100<<10 || strings.Trim(text, "a") != "" {
			t.Errorf("declared length %v: status %d, %d content bytes", declare, status, len(text))
		}
	}
}
