// Package store is the shard's annotations file: records are appended as they complete, so a killed
// annotator loses at most the line it was writing, and a restarted one knows which inputs are done.
package store

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/distillery-dev/distillery/internal/contract"
)

// idKey identifies a done input by a 128-bit hash of its id, so that a resumed shard with millions of
// done records keeps a small set in memory.
type idKey [16]byte

func keyOf(id string) idKey {
	sum := sha256.Sum256([]byte(id))
	return idKey(sum[:16])
}

// Shard is an open annotations file.
type Shard struct {
	path string
	mu   sync.Mutex
	file *os.File
	done map[idKey]struct{}
	// Existing describes the records found in the file when it was opened.
	Existing Existing
}

// Existing is what a previous attempt left in the file.
type Existing struct {
	Count int
	// RepairedBytes is the size of the torn last line that was cut off, 0 when none.
	RepairedBytes int64
}

// Open opens (creating it and its folder if needed) the shard file, cuts off a torn last line, and loads
// the ids already done. tally is called for each existing record so the caller can count it.
func Open(path string, tally func(contract.Record)) (*Shard, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating annotations folder: %w", err)
	}
	s := &Shard{path: path, done: map[idKey]struct{}{}}
	if err := s.load(tally); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s for appending: %w", path, err)
	}
	s.file = f
	return s, nil
}

// IsDone reports whether a record for id is already in the file.
func (s *Shard) IsDone(id string) bool {
	_, ok := s.done[keyOf(id)]
	return ok
}

// Append writes one record as one line in a single write, so a kill leaves at most a torn last line.
func (s *Shard) Append(r contract.Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding record %s: %w", r.ID, err)
	}
	b = append(b, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.file.Write(b); err != nil {
		return fmt.Errorf("appending record %s to %s: %w", r.ID, s.path, err)
	}
	return nil
}

// Sync flushes the file to disk, so a node crash loses little as well.
func (s *Shard) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.file.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", s.path, err)
	}
	return nil
}

// Close syncs and closes the file.
func (s *Shard) Close() error {
	if err := s.Sync(); err != nil {
		s.file.Close()
		return err
	}
	return s.file.Close()
}
