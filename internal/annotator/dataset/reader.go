// Package dataset streams the lines of one shard out of a JSONL dataset without loading the file: memory
// stays bounded by the longest line, whatever the file size.
package dataset

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/distillery-dev/distillery/internal/contract"
)

// DefaultMaxLineBytes bounds one dataset line; a longer line is a bad line, not an out-of-memory kill.
const DefaultMaxLineBytes = 16 << 20

// Item is one input of the shard.
type Item struct {
	// Line is the 1-based line number in the dataset file, for messages.
	Line  int
	ID    string
	Input string
	// Gold is the dataset's label, empty when the dataset has none.
	Gold string
}

// BadLineError is a shard line that is not a usable record; the caller counts and skips it, or fails.
type BadLineError struct {
	Path string
	Line int
	Err  error
}

func (e *BadLineError) Error() string {
	return fmt.Sprintf("reading %s line %d: %v", e.Path, e.Line, e.Err)
}

func (e *BadLineError) Unwrap() error { return e.Err }

// Reader yields the items of one shard: the lines whose 0-based position modulo shards is the shard
// index, counting every line, blank or not (contract.InShard). Blank lines are skipped silently.
type Reader struct {
	path         string
	fields       contract.DatasetRef
	shard        int
	shards       int
	MaxLineBytes int

	file *os.File
	buf  *bufio.Reader
	pos  int
	long []byte
}

// Open opens the dataset for one shard.
func Open(path string, fields contract.DatasetRef, shard, shards int) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening dataset: %w", err)
	}
	return &Reader{
		path: path, fields: fields, shard: shard, shards: shards, MaxLineBytes: DefaultMaxLineBytes,
		file: f, buf: bufio.NewReaderSize(f, 256<<10),
	}, nil
}

// Close closes the file.
func (r *Reader) Close() error { return r.file.Close() }

// Next returns the next item of the shard, a *BadLineError for a shard line that cannot be used (reading
// may go on after it), or io.EOF at the end.
func (r *Reader) Next() (Item, error) {
	for {
		line, ok, err := r.nextShardLine()
		if err != nil {
			return Item{}, err
		}
		if !ok {
			continue
		}
		item, err := r.decode(line)
		if err != nil {
			return Item{}, &BadLineError{Path: r.path, Line: r.pos, Err: err}
		}
		return item, nil
	}
}

// nextShardLine reads one line and returns it when it belongs to the shard and is not blank.
func (r *Reader) nextShardLine() (line []byte, ok bool, err error) {
	inShard := contract.InShard(r.pos, r.shard, r.shards)
	line, tooLong, err := r.readLine(inShard)
	if err != nil {
		return nil, false, err
	}
	r.pos++
	if !inShard {
		return nil, false, nil
	}
	if tooLong {
		return nil, false, &BadLineError{Path: r.path, Line: r.pos, Err: fmt.Errorf("line longer than %d bytes", r.MaxLineBytes)}
	}
	line = bytes.TrimSpace(line)
	return line, len(line) > 0, nil
}

// readLine reads up to and including the next newline. When keep is false the bytes are skipped, not
// gathered, so lines of other shards cost no memory. The returned slice is valid until the next call.
func (r *Reader) readLine(keep bool) (line []byte, tooLong bool, err error) {
	r.long = r.long[:0]
	for {
		chunk, err := r.buf.ReadSlice('\n')
		if keep && !tooLong {
			if len(r.long)+len(chunk) > r.MaxLineBytes {
				tooLong, r.long = true, r.long[:0]
			} else if err == nil && len(r.long) == 0 {
				return chunk, false, nil
			} else {
				r.long = append(r.long, chunk...)
			}
		}
		switch {
		case err == nil:
			return r.long, tooLong, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && (len(chunk) > 0 || len(r.long) > 0 || tooLong):
			return r.long, tooLong, nil // a last line without a newline
		case errors.Is(err, io.EOF):
			return nil, false, io.EOF
		default:
			return nil, false, fmt.Errorf("reading %s after line %d: %w", r.path, r.pos, err)
		}
	}
}

// decode reads the configured fields of one JSON line.
func (r *Reader) decode(line []byte) (Item, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil {
		return Item{}, fmt.Errorf("not a JSON object: %w", err)
	}
	input, err := stringField(obj, r.fields.InputField)
	if err != nil || input == "" {
		return Item{}, fmt.Errorf("no input field %q: %v", r.fields.InputField, orEmpty(err))
	}
	item := Item{Line: r.pos, Input: input}
	if item.ID, err = stringField(obj, r.fields.IDField); err != nil || item.ID == "" {
		// Without an id the line number identifies the input; it is stable across restarts.
		item.ID = strconv.Itoa(r.pos)
	}
	if r.fields.LabelField != "" {
		item.Gold, _ = stringField(obj, r.fields.LabelField)
	}
	return item, nil
}

// stringField reads a string field; numbers and booleans are kept as written (ids are often numbers).
func stringField(obj map[string]json.RawMessage, name string) (string, error) {
	raw, ok := obj[name]
	if !ok || string(raw) == "null" {
		return "", errors.New("missing")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	if raw[0] == '{' || raw[0] == '[' {
		return "", errors.New("not a string")
	}
	return string(raw), nil
}

func orEmpty(err error) string {
	if err == nil {
		return "empty"
	}
	return err.Error()
}
