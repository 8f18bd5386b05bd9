package dataset

import (
	"container/heap"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/distillery-dev/distillery/internal/contract"
)

// Sample is the set of dataset positions (0-based, counting every line) that spec.dataset.maxExamples
// keeps: the n usable lines of the whole file with the smallest SampleKey(seed, position). It depends only
// on the file, n and the seed, so every shard and every retry draws the same one.
type Sample struct {
	positions []int // sorted
}

// Has reports whether the line at position is in the sample.
func (s *Sample) Has(position int) bool {
	i := sort.SearchInts(s.positions, position)
	return i < len(s.positions) && s.positions[i] == position
}

// Len is the number of lines in the sample.
func (s *Sample) Len() int { return len(s.positions) }

// SampleKey is the first 8 bytes, big-endian, of SHA-256 over the seed and the position, each as 8 bytes
// big-endian (the position is 0-based and counts every line). docs/workloads.md states the same rule.
func SampleKey(seed int64, position int) uint64 {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(seed))
	binary.BigEndian.PutUint64(b[8:], uint64(position))
	sum := sha256.Sum256(b[:])
	return binary.BigEndian.Uint64(sum[:8])
}

// DrawSample reads the whole dataset once and keeps the n usable lines with the smallest keys (ties go to
// the lower position) in a bounded heap, so memory is O(n) whatever the file size. Bad lines are never
// drawn; the shard that owns them reports them. total is the number of usable lines in the file.
func DrawSample(path string, fields contract.DatasetRef, n int, seed int64) (s *Sample, total int, err error) {
	if n <= 0 {
		return nil, 0, fmt.Errorf("a sample needs a positive size, got %d", n)
	}
	r, err := Open(path, fields, 0, 1)
	if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	h := make(keyHeap, 0, min(n, 1<<16))
	for {
		item, err := r.Next()
		var bad *BadLineError
		switch {
		case errors.Is(err, io.EOF):
			return h.sample(), total, nil
		case errors.As(err, &bad):
			continue
		case err != nil:
			return nil, total, err
		}
		total++
		k := sampleEntry{key: SampleKey(seed, item.Line-1), position: item.Line - 1}
		if len(h) < n {
			heap.Push(&h, k)
		} else if k.less(h[0]) {
			h[0] = k
			heap.Fix(&h, 0)
		}
	}
}

type sampleEntry struct {
	key      uint64
	position int
}

func (a sampleEntry) less(b sampleEntry) bool {
	return a.key < b.key || (a.key == b.key && a.position < b.position)
}

// keyHeap is a max-heap: its root is the largest key kept, the first to go when a smaller one comes.
type keyHeap []sampleEntry

func (h keyHeap) Len() int           { return len(h) }
func (h keyHeap) Less(i, j int) bool { return h[j].less(h[i]) }
func (h keyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *keyHeap) Push(x any)        { *h = append(*h, x.(sampleEntry)) }
func (h *keyHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (h keyHeap) sample() *Sample {
	s := &Sample{positions: make([]int, len(h))}
	for i, e := range h {
		s.positions[i] = e.position
	}
	sort.Ints(s.positions)
	return s
}
