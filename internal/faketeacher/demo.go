package faketeacher

import (
	"math/rand/v2"
	"sync"
	"time"
)

// DemoFaults are the failures the demo teacher injects, so a demo shows retries and filtering.
type DemoFaults struct {
	// FailFirstN answers the first n requests with 500.
	FailFirstN int
	// GarbageFraction of the other answers have no marker or a label outside the set, alternately.
	GarbageFraction float64
	// TooManyFor answers 429 with Retry-After for this long after the first request.
	TooManyFor time.Duration
	// Seed makes the garbage reproducible.
	Seed uint64
}

// DemoScript is the script of the demo teacher.
func DemoScript(f DemoFaults) Script {
	var start time.Time
	var startOnce sync.Once
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(f.Seed, f.Seed+1))
	garbage := func() (bool, Fault) {
		mu.Lock()
		defer mu.Unlock()
		if rng.Float64() >= f.GarbageFraction {
			return false, Good
		}
		if rng.IntN(2) == 0 {
			return true, NoMarker
		}
		return true, LabelOutsideSet
	}
	return func(req Request) Reply {
		startOnce.Do(func() { start = time.Now() })
		if since := time.Since(start); since < f.TooManyFor {
			return Reply{Fault: TooManyRequests, RetryAfter: f.TooManyFor - since}
		}
		if req.N <= f.FailFirstN {
			return Reply{Fault: ServerError}
		}
		if bad, fault := garbage(); bad {
			return Reply{Fault: fault}
		}
		return Reply{}
	}
}
