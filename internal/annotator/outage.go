package annotator

import (
	"fmt"
	"sync"
)

// outageGuard tells a poisoned input from a teacher that went down mid-shard. An input that failed
// every retry is held back instead of being written as teacher_error at once. A success of a request that
// started after it was held proves the teacher works: the held input is written as teacher_error then (a
// success that started earlier proves nothing: its answer may predate the outage). When limit inputs are
// held, the teacher is down: the shard fails without writing them, and the restarted pod asks again.
type outageGuard struct {
	mu    sync.Mutex
	held  []heldInput
	holds int
	limit int
}

type heldInput struct {
	rec annotated
	// seq numbers the holds from 1.
	seq int
}

// ticket is taken before a request starts; pass it to succeeded.
func (g *outageGuard) ticket() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.holds
}

// failed holds the input back; it returns an error once limit inputs are held.
func (g *outageGuard) failed(w workItem, err error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.holds++
	g.held = append(g.held, heldInput{rec: annotated{rec: teacherError(w.item, err), eval: w.eval}, seq: g.holds})
	if len(g.held) < g.limit {
		return nil
	}
	return fmt.Errorf("teacher stopped answering: %d requests in a row failed every retry, the last with: %w", len(g.held), err)
}

// succeeded returns the inputs held before the successful request started, to be written as
// teacher_error.
func (g *outageGuard) succeeded(ticket int) []annotated {
	g.mu.Lock()
	defer g.mu.Unlock()
	var release []annotated
	kept := g.held[:0]
	for _, h := range g.held {
		if h.seq <= ticket {
			release = append(release, h.rec)
		} else {
			kept = append(kept, h)
		}
	}
	g.held = kept
	return release
}

// remaining returns every held input, at the end of a shard that did not fail.
func (g *outageGuard) remaining() []annotated {
	return g.succeeded(int(^uint(0) >> 1))
}
