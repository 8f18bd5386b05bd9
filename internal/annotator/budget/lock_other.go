//go:build !unix

package budget

import "sync"

// processLock serialises the ledger within one process where flock does not exist: shards that run as
// separate processes on such a system are not kept apart.
var processLock sync.Mutex

func lockFile(string) (func(), error) {
	processLock.Lock()
	return processLock.Unlock, nil
}
