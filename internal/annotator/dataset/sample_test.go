package dataset

import (
	"fmt"
	"sort"
	"strings"
	"testing"
)

// sampleFile has 300 lines: every 10th is not JSON, every 25th is blank.
func sampleFile(t *testing.T) (path string, usable []int) {
	t.Helper()
	var b strings.Builder
	for pos := range 300 {
		switch {
		case pos%25 == 24:
			b.WriteString("\n")
		case pos%10 == 9:
			b.WriteString("{broken\n")
		default:
			fmt.Fprintf(&b, `{"id":"%d","text":"t%d"}`+"\n", pos, pos)
			usable = append(usable, pos)
		}
	}
	return writeFile(t, b.String()), usable
}

// reference is the rule of docs/workloads.md, brute force: sort every usable position by its key.
func reference(usable []int, n int, seed int64) []int {
	byKey := append([]int(nil), usable...)
	sort.Slice(byKey, func(i, j int) bool {
		ki, kj := SampleKey(seed, byKey[i]), SampleKey(seed, byKey[j])
		return ki < kj || (ki == kj && byKey[i] < byKey[j])
	})
	out := byKey[:min(n, len(byKey))]
	sort.Ints(out)
	return out
}

func TestDrawSampleKeepsTheSmallestKeysOfUsableLines(t *testing.T) {
	path, usable := sampleFile(t)
	for _, tc := range []struct {
		n    int
		seed int64
	}{{1, 0}, {17, 0}, {17, 42}, {100, 7}, {len(usable), 3}, {1000, 3}} {
		s, total, err := DrawSample(path, fields, tc.n, tc.seed)
		if err != nil {
			t.Fatal(err)
		}
		want := reference(usable, tc.n, tc.seed)
		if total != len(usable) || fmt.Sprint(s.positions) != fmt.Sprint(want) {
			t.Errorf("n=%d seed=%d: sample %v of %d usable lines, want %v of %d", tc.n, tc.seed, s.positions, total, want, len(usable))
		}
	}
	a, _, _ := DrawSample(path, fields, 17, 0)
	b, _, _ := DrawSample(path, fields, 17, 1)
	if fmt.Sprint(a.positions) == fmt.Sprint(b.positions) {
		t.Error("another seed drew the same sample")
	}
}

func TestShardsOfASampleCoverItExactlyOnceAndStillReportBadLines(t *testing.T) {
	path, fileUsable := sampleFile(t) // 24 lines are broken: positions 9 mod 10, except 49 mod 50 (blank)
	s, _, err := DrawSample(path, fields, 40, 9)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	bad := 0
	usable := 0
	for shard := range 3 {
		r, err := Open(path, fields, shard, 3)
		if err != nil {
			t.Fatal(err)
		}
		r.Sample = s
		items, badLines := readAllFrom(t, r)
		r.Close()
		usable += r.Usable()
		bad += len(badLines)
		for _, it := range items {
			seen[it.Line-1]++
		}
		if n, err := CountShard(path, fields, shard, 3, s); err != nil || n != len(items)+len(badLines) {
			t.Errorf("CountShard(%d) = %d, %v; the shard has %d items and %d bad lines", shard, n, err, len(items), len(badLines))
		}
	}
	if len(seen) != 40 {
		t.Errorf("the shards read %d sampled lines, want 40", len(seen))
	}
	for pos, n := range seen {
		if n != 1 || !s.Has(pos) {
			t.Errorf("position %d read %d times, in sample %v", pos, n, s.Has(pos))
		}
	}
	if bad != 24 || usable != len(fileUsable) {
		t.Errorf("%d bad lines and %d usable lines over the shards, want every one of the file's (24, %d)", bad, usable, len(fileUsable))
	}
}
