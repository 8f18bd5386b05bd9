package dataset

import (
	"errors"
	"io"

	"github.com/distillery-dev/distillery/internal/contract"
)

// CountShard counts the non-blank lines of the shard, valid or not, in one streaming pass; it is the
// "total" of progress reports, known before the first teacher call.
func CountShard(path string, shard, shards int) (int, error) {
	r, err := Open(path, contract.DatasetRef{}, shard, shards)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	n := 0
	for {
		_, ok, err := r.nextShardLine()
		var bad *BadLineError
		switch {
		case errors.Is(err, io.EOF):
			return n, nil
		case errors.As(err, &bad):
			n++
		case err != nil:
			return n, err
		case ok:
			n++
		}
	}
}
