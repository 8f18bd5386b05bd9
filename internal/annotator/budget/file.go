package budget

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/distillery-dev/distillery/internal/contract"
)

// FileLedger is the ledger outside a cluster: a JSON file of the shares
// ({"shares":{"0":{"granted":..,"used":..}}}) in the job folder, updated under an exclusive lock on a
// lock file beside it (flock; shards run as processes on one machine) and replaced by rename, so a killed
// process leaves the old file or the new one. The caps are the config's: locally, the YAML run again with
// a larger budget is the raise.
type FileLedger struct {
	Path string
	Caps contract.BudgetCaps
}

type ledgerFile struct {
	Shares map[string]contract.BudgetShare `json:"shares"`
}

// Update implements Ledger.
func (l *FileLedger) Update(ctx context.Context, shard int, change func(State) (contract.BudgetShare, error)) (State, error) {
	if err := ctx.Err(); err != nil {
		return State{}, err
	}
	if err := os.MkdirAll(filepath.Dir(l.Path), 0o755); err != nil {
		return State{}, fmt.Errorf("creating the budget ledger's folder: %w", err)
	}
	unlock, err := lockFile(l.Path + ".lock")
	if err != nil {
		return State{}, fmt.Errorf("locking budget ledger %s: %w", l.Path, err)
	}
	defer unlock()
	state, err := l.read()
	if err != nil {
		return State{}, err
	}
	share, err := change(state)
	if err != nil {
		return State{}, err
	}
	state.Shares[shard] = share
	if err := l.write(state); err != nil {
		return State{}, err
	}
	return state, nil
}

func (l *FileLedger) read() (State, error) {
	s := State{Caps: l.Caps, Shares: map[int]contract.BudgetShare{}}
	b, err := os.ReadFile(l.Path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("reading budget ledger: %w", err)
	}
	var f ledgerFile
	if err := json.Unmarshal(b, &f); err != nil {
		return State{}, fmt.Errorf("budget ledger %s is not valid JSON: %w", l.Path, err)
	}
	for k, v := range f.Shares {
		i, err := strconv.Atoi(k)
		if err != nil {
			return State{}, fmt.Errorf("budget ledger %s: share %q is not a shard number", l.Path, k)
		}
		s.Shares[i] = v
	}
	return s, nil
}

func (l *FileLedger) write(s State) error {
	f := ledgerFile{Shares: map[string]contract.BudgetShare{}}
	for i, sh := range s.Shares {
		f.Shares[strconv.Itoa(i)] = sh
	}
	b, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(l.Path), "."+filepath.Base(l.Path)+".*")
	if err != nil {
		return fmt.Errorf("writing budget ledger: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), l.Path)
	}
	if err != nil {
		return fmt.Errorf("writing budget ledger %s: %w", l.Path, err)
	}
	return nil
}
