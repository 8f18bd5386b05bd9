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
	"sort"
	"strconv"
	"strings"

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
	// Sample, when set, keeps only its lines: the shard's other usable lines are passed over silently
	// (bad lines are still reported).
	Sample *Sample

	usable int

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
		r.usable++
		if r.Sample != nil && !r.Sample.Has(item.Line-1) {
			continue
		}
		return item, nil
	}
}

// Usable is the number of the shard's usable lines read so far, in the sample or not.
func (r *Reader) Usable() int { return r.usable }

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
	switch {
	case errors.Is(err, errMissing):
		return Item{}, &MissingFieldError{Field: r.fields.InputField, Fields: fieldNames(obj)}
	case err != nil:
		return Item{}, fmt.Errorf("input field %q %w", r.fields.InputField, err)
	case input == "":
		return Item{}, fmt.Errorf("input field %q is empty", r.fields.InputField)
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

// MissingFieldError is a line without the configured field; Fields are the names it does have, so the
// message shows what the field should have been.
type MissingFieldError struct {
	Field  string
	Fields []string
}

func (e *MissingFieldError) Error() string {
	return fmt.Sprintf("no field %q (fields: %s)", e.Field, strings.Join(e.Fields, ", "))
}

// maxNamedFields and maxFieldNameBytes keep a message about a very wide or odd line short.
const (
	maxNamedFields    = 12
	maxFieldNameBytes = 64
)

// fieldNames are the line's field names, sorted, at most maxNamedFields of them.
func fieldNames(obj map[string]json.RawMessage) []string {
	names := make([]string, 0, len(obj))
	for name := range obj {
		if len(name) > maxFieldNameBytes {
			name = strings.ToValidUTF8(name[:maxFieldNameBytes], "") + "..."
		}
		quoted := strconv.Quote(name) // control characters stay visible and harmless
		names = append(names, quoted[1:len(quoted)-1])
	}
	sort.Strings(names)
	if len(names) > maxNamedFields {
		names = append(names[:maxNamedFields], fmt.Sprintf("and %d more", len(names)-maxNamedFields))
	}
	if len(names) == 0 {
		names = append(names, "none")
	}
	return names
}

var errMissing = errors.New("missing")

// stringField reads a string field; numbers and booleans are kept as written (ids are often numbers).
func stringField(obj map[string]json.RawMessage, name string) (string, error) {
	raw, ok := obj[name]
	if !ok {
		return "", errMissing
	}
	if string(raw) == "null" {
		return "", errors.New("is null")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	if raw[0] == '{' || raw[0] == '[' {
		return "", errors.New("is not a string")
	}
	return string(raw), nil
}
