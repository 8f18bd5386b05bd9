// Package cache keeps every answer the teacher was paid for, addressed by a hash of what was asked (the
// endpoint, the model, the full prompt and the sampling parameters), so that a re-run, a resumed shard or
// another job with the same teacher and prompt reuses the answer instead of paying for it again.
package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/distillery-dev/distillery/internal/annotator/prompt"
	"github.com/distillery-dev/distillery/internal/contract"
)

// Request is everything that determines the teacher's answer.
type Request struct {
	Endpoint    string           `json:"endpoint"`
	Model       string           `json:"model"`
	Messages    []prompt.Message `json:"messages"`
	Temperature float64          `json:"temperature"`
	MaxTokens   int              `json:"maxTokens"`
}

// Entry is a paid answer.
type Entry struct {
	Content string         `json:"content"`
	Usage   contract.Usage `json:"usage"`
}

// Key is the hex SHA-256 of the request's JSON.
func Key(r Request) string {
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Dir is a cache folder; the zero value (no folder) caches nothing.
type Dir struct{ Path string }

// Get returns the cached answer for key, ok false when there is none. A damaged entry counts as absent.
func (d Dir) Get(key string) (Entry, bool, error) {
	if d.Path == "" {
		return Entry{}, false, nil
	}
	b, err := os.ReadFile(d.file(key))
	if errors.Is(err, os.ErrNotExist) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("reading cache entry %s: %w", key, err)
	}
	var e Entry
	if json.Unmarshal(b, &e) != nil {
		return Entry{}, false, nil
	}
	return e, true, nil
}

// Put stores an answer atomically: written to a temporary file in the same folder, then renamed, so
// readers (other shards, a later run) see a whole entry or none. It does not fsync: after a node crash an
// entry may be empty, which Get treats as absent, and the shard file (synced) still holds the record.
func (d Dir) Put(key string, e Entry) error {
	if d.Path == "" {
		return nil
	}
	path := d.file(key)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating cache folder: %w", err)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding cache entry %s: %w", key, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+key[:8]+"-*")
	if err != nil {
		return fmt.Errorf("creating cache entry %s: %w", key, err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if err := writeAndClose(tmp, b); err != nil {
		return fmt.Errorf("writing cache entry %s: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("renaming cache entry %s into place: %w", key, err)
	}
	return nil
}

func writeAndClose(f *os.File, b []byte) error {
	_, err := f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// file spreads entries over 256 sub-folders so no folder grows to millions of files.
func (d Dir) file(key string) string {
	return filepath.Join(d.Path, key[:2], key+".json")
}
