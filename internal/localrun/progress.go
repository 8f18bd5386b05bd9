package localrun

import (
	"io"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// ewmaAge is how many progress updates the moving averages of rate and ETA weigh: with the annotator's
// half-second reports about the last 15 s, with the trainer's one-second reports the last 30 s. The ETA
// follows the current rate, not the average since the start (a resumed run or a cache full of answers
// would make that one wrong).
const ewmaAge = 30

// stageBar is one stage's progress bar: done/total, the rate and the ETA. On a terminal it redraws in
// place; elsewhere (a CI log, a pipe) it prints a line every 10 s.
type stageBar struct {
	p   *mpb.Progress
	bar *mpb.Bar
	// own: the bar is alone in its container, which finish then waits for.
	own bool

	mu      sync.Mutex
	started bool
	last    time.Time
}

// barGroup draws several bars at once, one per line (a sweep's points).
type barGroup struct{ p *mpb.Progress }

func newBarGroup(out io.Writer, terminal bool) *barGroup {
	opts := []mpb.ContainerOption{mpb.WithOutput(out), mpb.WithWidth(100)}
	if !terminal {
		opts = append(opts, mpb.WithAutoRefresh(), mpb.WithRefreshRate(10*time.Second))
	}
	return &barGroup{p: mpb.New(opts...)}
}

// wait waits until every bar of the group is finished and drawn.
func (g *barGroup) wait() { g.p.Wait() }

// newStageBar starts the bar of stage, counting unit (e.g. "inputs", "steps").
func newStageBar(out io.Writer, terminal bool, stage, unit string) *stageBar {
	s := newBarGroup(out, terminal).add(stage, unit, 0)
	s.own = true
	return s
}

// add starts a bar named name in the group; bars are drawn by order, lowest on top.
func (g *barGroup) add(name, unit string, order int) *stageBar {
	started := time.Now()
	// Total 0: the bar completes only when finish says so, never because the shards that reported so far
	// are done.
	bar := g.p.AddBar(0,
		mpb.PrependDecorators(
			decor.Name(name, decor.WC{W: 9, C: decor.DindentRight | decor.DSyncWidth}),
			decor.CountersNoUnit("%d/%d "+unit, decor.WCSyncWidth),
		),
		mpb.AppendDecorators(
			// rate and ETA while the stage runs, then only how long it took
			decor.OnCompleteOrOnAbort(decor.EwmaSpeed(0, "%.1f "+unit+"/s", ewmaAge, decor.WCSyncSpace), ""),
			decor.OnCompleteOrOnAbort(decor.Name("  ETA "), ""),
			decor.OnCompleteOrOnAbort(decor.EwmaETA(decor.ET_STYLE_GO, ewmaAge), ""),
			elapsed(started),
		),
		mpb.BarPriority(order),
	)
	return &stageBar{p: g.p, bar: bar}
}

// elapsed is the time since started, frozen when the bar completes or stops (a group's other bars may
// still run).
func elapsed(started time.Time) decor.Decorator {
	msg := ""
	return decor.Any(func(s decor.Statistics) string {
		if !s.Completed && !s.Aborted || msg == "" {
			msg = "  elapsed " + time.Since(started).Round(100*time.Millisecond).String()
		}
		return msg
	})
}

// update shows done of total. The first update only places the bar (work done by an earlier, resumed
// run is not this run's rate); later ones feed the moving averages.
func (s *stageBar) update(done, total int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.bar.SetTotal(total, false)
	if !s.started {
		s.bar.SetCurrent(done)
		s.bar.DecoratorAverageAdjust(now)
		s.started, s.last = true, now
		return
	}
	s.bar.EwmaSetCurrent(done, now.Sub(s.last))
	s.last = now
}

// finish completes the bar (done) or stops it where it is; a bar of its own is drawn before it returns,
// a group's when the group's wait returns.
func (s *stageBar) finish(ok bool) {
	if ok {
		s.bar.SetTotal(-1, true)
	} else {
		s.bar.Abort(false)
	}
	if s.own {
		s.p.Wait()
	}
}
