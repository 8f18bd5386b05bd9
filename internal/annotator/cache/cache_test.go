package cache

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/distillery-dev/distillery/internal/annotator/prompt"
	"github.com/distillery-dev/distillery/internal/contract"
)

func TestKeyCoversEverythingThatShapesTheAnswer(t *testing.T) {
	base := Request{Endpoint: "http://t/v1", Model: "m", Messages: []prompt.Message{{Role: "user", Content: "Q: x\nA:"}}, Temperature: 0, MaxTokens: 64}
	variants := map[string]func(*Request){
		"endpoint":    func(r *Request) { r.Endpoint = "http://u/v1" },
		"model":       func(r *Request) { r.Model = "m2" },
		"prompt":      func(r *Request) { r.Messages = []prompt.Message{{Role: "user", Content: "Q: y\nA:"}} },
		"temperature": func(r *Request) { r.Temperature = 0.7 },
		"max tokens":  func(r *Request) { r.MaxTokens = 65 },
	}
	if Key(base) != Key(base) {
		t.Fatal("Key is not deterministic")
	}
	for name, change := range variants {
		r := base
		change(&r)
		if Key(r) == Key(base) {
			t.Errorf("changing the %s keeps the key", name)
		}
	}
}

func TestPutThenGet(t *testing.T) {
	d := Dir{Path: t.TempDir()}
	key := Key(Request{Model: "m"})
	if _, ok, err := d.Get(key); ok || err != nil {
		t.Fatalf("empty cache: ok=%v err=%v", ok, err)
	}
	want := Entry{Content: "So the answer is first.", Usage: contract.Usage{PromptTokens: 10, CompletionTokens: 5}}
	if err := d.Put(key, want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := d.Get(key)
	if err != nil || !ok || got != want {
		t.Errorf("Get = %+v, %v, %v; want %+v", got, ok, err, want)
	}
	leftovers, _ := filepath.Glob(filepath.Join(d.Path, key[:2], ".tmp-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestADamagedEntryIsAMiss(t *testing.T) {
	d := Dir{Path: t.TempDir()}
	key := Key(Request{Model: "m"})
	os.MkdirAll(filepath.Join(d.Path, key[:2]), 0o755)
	os.WriteFile(d.file(key), nil, 0o644)
	if _, ok, err := d.Get(key); ok || err != nil {
		t.Errorf("empty entry: ok=%v err=%v, want a miss", ok, err)
	}
}

func TestNoFolderCachesNothing(t *testing.T) {
	var d Dir
	if err := d.Put("k", Entry{Content: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := d.Get("k"); ok {
		t.Error("a cache without a folder returned an entry")
	}
}

// Two pods writing the same entries at once (two jobs on one claim, or two shards): a reader sees a
// whole entry, one writer's or the other's, never a torn or missing one.
func TestConcurrentWritersNeverShowAPartialEntry(t *testing.T) {
	path := t.TempDir()
	a, b := Dir{Path: path}, Dir{Path: path} // two processes' views of one folder
	big := func(c byte) Entry {
		return Entry{Content: strings.Repeat(string(c), 64<<10), Usage: contract.Usage{PromptTokens: int(c)}}
	}
	versions := []Entry{big('a'), big('b')}
	keys := make([]string, 8)
	for i := range keys {
		keys[i] = Key(Request{Model: "m", MaxTokens: i})
		if err := a.Put(keys[i], versions[0]); err != nil {
			t.Fatal(err)
		}
	}
	var g errgroup.Group
	for w, d := range []Dir{a, b} {
		g.Go(func() error {
			for range 10 {
				for _, k := range keys {
					if err := d.Put(k, versions[w]); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	for range 2 {
		g.Go(func() error {
			for range 20 {
				for _, k := range keys {
					e, ok, err := b.Get(k)
					if err != nil || !ok {
						return fmt.Errorf("entry %s: ok=%v err=%v while being rewritten", k[:8], ok, err)
					}
					if e != versions[0] && e != versions[1] {
						return fmt.Errorf("entry %s is neither writer's (%d bytes)", k[:8], len(e.Content))
					}
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(path, "*", ".tmp-*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
