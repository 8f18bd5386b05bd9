package dataset

import (
	"errors"
	"io"

	"github.com/distillery-dev/distillery/internal/contract"
)

// CountShard counts the lines the shard will deal with, in one streaming pass: its items (those in the
// sample, when there is one) and its bad lines. It is the "total" of progress reports, known before the
// first teacher call.
func CountShard(path string, fields contract.DatasetRef, shard, shards int, sample *Sample) (int, error) {
	r, err := Open(path, fields, shard, shards)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	r.Sample = sample
	n := 0
	for {
		_, err := r.Next()
		var bad *BadLineError
		switch {
		case errors.Is(err, io.EOF):
			return n, nil
		case err == nil || errors.As(err, &bad):
			n++
		default:
			return n, err
		}
	}
}
