package store

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/distillery-dev/distillery/internal/contract"
)

// load reads the records a previous attempt wrote. A last line without its newline, or that is not a
// record, is the write a kill interrupted: it is cut off and its input will be annotated again. An
// unreadable line before the last one is corruption this program did not cause, and stops the shard.
func (s *Shard) load(tally func(contract.Record)) error {
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening %s to resume: %w", s.path, err)
	}
	defer f.Close()
	good, size, err := s.readRecords(f, tally)
	if err != nil {
		return err
	}
	if good < size {
		if err := os.Truncate(s.path, good); err != nil {
			return fmt.Errorf("cutting the torn last line of %s: %w", s.path, err)
		}
		s.Existing.RepairedBytes = size - good
	}
	return nil
}

// readRecords returns the offset just past the last good line and the file size.
func (s *Shard) readRecords(f *os.File, tally func(contract.Record)) (good, size int64, err error) {
	r := bufio.NewReaderSize(f, 256<<10)
	var badLine int
	for line := 1; ; line++ {
		b, err := r.ReadBytes('\n')
		size += int64(len(b))
		if errors.Is(err, io.EOF) {
			if badLine > 0 && len(b) > 0 {
				return 0, 0, fmt.Errorf("resuming %s: line %d is not a record and is not the last line", s.path, badLine)
			}
			return good, size, nil
		}
		if err != nil {
			return 0, 0, fmt.Errorf("reading %s line %d: %w", s.path, line, err)
		}
		if badLine > 0 {
			return 0, 0, fmt.Errorf("resuming %s: line %d is not a record and is not the last line", s.path, badLine)
		}
		var rec contract.Record
		if json.Unmarshal(b, &rec) != nil || rec.ID == "" || rec.Status == "" {
			badLine = line
			continue
		}
		good = size
		s.done[keyOf(rec.ID)] = struct{}{}
		s.Existing.Count++
		if tally != nil {
			tally(rec)
		}
	}
}
