package dataset

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distillery-dev/distillery/internal/contract"
)

var fields = contract.DatasetRef{IDField: "id", InputField: "text", LabelField: "label"}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data.jsonl")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// readAll returns the items and the line numbers of bad lines of one shard.
func readAll(t *testing.T, path string, shard, shards int, maxLine int) (items []Item, bad []int) {
	t.Helper()
	r, err := Open(path, fields, shard, shards)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if maxLine > 0 {
		r.MaxLineBytes = maxLine
	}
	return readAllFrom(t, r)
}

func readAllFrom(t *testing.T, r *Reader) (items []Item, bad []int) {
	t.Helper()
	for {
		item, err := r.Next()
		var b *BadLineError
		switch {
		case errors.Is(err, io.EOF):
			return items, bad
		case errors.As(err, &b):
			bad = append(bad, b.Line)
		case err != nil:
			t.Fatal(err)
		default:
			items = append(items, item)
		}
	}
}

const mixed = `{"id":"a","text":"one","label":"x"}
not json
{"id":7,"text":"two"}

{"id":"c","label":"y"}
{"text":"no id"}
{"id":"e","text":"last, no newline","label":true}`

func TestReaderReportsBadLinesWithTheirNumbers(t *testing.T) {
	items, bad := readAll(t, writeFile(t, mixed), 0, 1, 0)
	want := []Item{
		{Line: 1, ID: "a", Input: "one", Gold: "x"},
		{Line: 3, ID: "7", Input: "two"},
		{Line: 6, ID: "6", Input: "no id"},
		{Line: 7, ID: "e", Input: "last, no newline", Gold: "true"},
	}
	if len(items) != len(want) {
		t.Fatalf("items = %+v, want %+v", items, want)
	}
	for i := range want {
		if items[i] != want[i] {
			t.Errorf("item %d = %+v, want %+v", i, items[i], want[i])
		}
	}
	if len(bad) != 2 || bad[0] != 2 || bad[1] != 5 {
		t.Errorf("bad lines = %v, want [2 5] (blank line 4 is skipped silently)", bad)
	}
}

func TestShardsCoverEveryLineExactlyOnce(t *testing.T) {
	var b strings.Builder
	for i := range 101 {
		b.WriteString(`{"id":"` + string(rune('A'+i%26)) + `` + strings.Repeat("x", i) + `","text":"t"}` + "\n")
	}
	path := writeFile(t, b.String())
	for _, shards := range []int{1, 3, 7} {
		seen := map[int]int{}
		total := 0
		for shard := range shards {
			items, _ := readAll(t, path, shard, shards, 0)
			n, err := CountShard(path, fields, shard, shards, nil)
			if err != nil || n != len(items) {
				t.Errorf("CountShard(%d of %d) = %d, %v; reader gave %d", shard, shards, n, err, len(items))
			}
			for _, it := range items {
				seen[it.Line]++
				if (it.Line-1)%shards != shard {
					t.Errorf("line %d is in shard %d of %d", it.Line, shard, shards)
				}
			}
			total += len(items)
		}
		if total != 101 || len(seen) != 101 {
			t.Errorf("%d shards: %d items over %d distinct lines, want 101", shards, total, len(seen))
		}
	}
}

func TestLongLines(t *testing.T) {
	long := `{"id":"long","text":"` + strings.Repeat("y", 300<<10) + `"}`
	path := writeFile(t, long+"\n"+`{"id":"short","text":"s"}`+"\n")
	items, bad := readAll(t, path, 0, 1, 0)
	if len(items) != 2 || len(items[0].Input) != 300<<10 || len(bad) != 0 {
		t.Fatalf("a 300 KiB line should be read whole: %d items, bad %v", len(items), bad)
	}
	items, bad = readAll(t, path, 0, 1, 64<<10)
	if len(items) != 1 || items[0].ID != "short" || len(bad) != 1 || bad[0] != 1 {
		t.Errorf("a line over the limit should be a bad line 1: items %+v, bad %v", items, bad)
	}
}

func TestABadLineSaysWhatIsWrong(t *testing.T) {
	cases := map[string]string{
		`{"prompt":"a","id":1}`: `no field "text" (fields: id, prompt)`,
		`{"text":null}`:         `input field "text" is null`,
		`{"text":{"a":1}}`:      `input field "text" is not a string`,
		`{"text":""}`:           `input field "text" is empty`,
		`["text"]`:              `not a JSON object`,
		`{"a\nb":1,"x\"":2}`:    `no field "text" (fields: a\nb, x\")`,
	}
	for line, want := range cases {
		r, err := Open(writeFile(t, line+"\n"), fields, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Next()
		r.Close()
		var bad *BadLineError
		if !errors.As(err, &bad) || bad.Line != 1 || !strings.HasPrefix(bad.Err.Error(), want) {
			t.Errorf("%s: %v, want line 1: %s", line, err, want)
		}
	}
}

// TestIDsAsTheTrainerReadsThem: the shared vector testdata/contract/dataset-ids.jsonl gives each line's id as
// the trainer's eval reader must give it too (student/tests/test_split.py reads the same files): numbers as
// written, no usable id (missing, null, empty, an object) its line number.
func TestIDsAsTheTrainerReadsThem(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "testdata", "contract")
	raw, err := os.ReadFile(filepath.Join(dir, "dataset-ids.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	items, bad := readAll(t, filepath.Join(dir, "dataset-ids.jsonl"), 0, 1, 0)
	if len(bad) != 0 || len(items) != len(want) {
		t.Fatalf("items %v, bad lines %v; want %d items", items, bad, len(want))
	}
	for i, it := range items {
		if it.ID != want[i] {
			t.Errorf("line %d: id %q, want %q", it.Line, it.ID, want[i])
		}
	}
}
