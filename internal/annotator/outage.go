package annotator

import (
	"fmt"
	"sync"

	"github.com/distillery-dev/distillery/internal/annotator/dataset"
	"github.com/distillery-dev/distillery/internal/contract"
)

// outageGuard tells a poisoned input from a teacher that went down mid-shard. An input that failed
// every retry is held back instead of being written as teacher_error at once: the next success proves
// the teacher works, and the held inputs are written as teacher_error then. When limit inputs in a row
// fail, the teacher is down: the shard fails without writing them, and the restarted pod asks again.
type outageGuard struct {
	mu    sync.Mutex
	held  []contract.Record
	limit int
}

// failed holds the input back; it returns an error once limit inputs in a row failed.
func (g *outageGuard) failed(item dataset.Item, err error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.held = append(g.held, teacherError(item, err))
	if len(g.held) < g.limit {
		return nil
	}
	return fmt.Errorf("teacher stopped answering: %d requests in a row failed every retry, the last with: %w", len(g.held), err)
}

// succeeded returns the held inputs, to be written as teacher_error.
func (g *outageGuard) succeeded() []contract.Record {
	g.mu.Lock()
	defer g.mu.Unlock()
	held := g.held
	g.held = nil
	return held
}
