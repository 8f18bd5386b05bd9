package budget

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/distillery-dev/distillery/internal/annotator/kubeapi"
	"github.com/distillery-dev/distillery/internal/annotator/sleep"
	"github.com/distillery-dev/distillery/internal/contract"
)

// ConfigMapLedger is the ledger in ConfigMap <job>-budget: key contract.BudgetCapsKey holds the caps (the
// operator writes it from the spec), key contract.BudgetEstimateKey what the estimate's sample spent (the
// operator writes it too; State.Shares[EstimateShare]), key contract.BudgetShareKey(i) shard i's share. A share is written
// with a JSON merge patch that carries the resourceVersion the update read, so the API server refuses it
// (409 Conflict) when any shard wrote in between, and the update runs again on fresh data: optimistic
// concurrency, with nothing but get and patch on that one ConfigMap in the stage pods' Role.
type ConfigMapLedger struct {
	API *kubeapi.Client
	// Name is the ConfigMap's name.
	Name string
	// Attempts bounds the tries of a request that fails other than by a conflict (the API server
	// restarting); 0 means 5.
	Attempts int
}

// InClusterLedger is the ledger ConfigMap name of a pod's namespace; ok is false outside a cluster.
func InClusterLedger(saDir, name string) (l *ConfigMapLedger, ok bool, err error) {
	api, ok, err := kubeapi.InCluster(saDir)
	if !ok || err != nil {
		return nil, ok, err
	}
	return &ConfigMapLedger{API: api, Name: name}, true, nil
}

type ledgerConfigMap struct {
	Metadata struct {
		ResourceVersion string `json:"resourceVersion"`
	} `json:"metadata"`
	Data map[string]string `json:"data"`
}

// Update implements Ledger.
func (l *ConfigMapLedger) Update(ctx context.Context, shard int, change func(State) (contract.BudgetShare, error)) (State, error) {
	u := l.API.ConfigMapURL(l.Name)
	failures := 0
	for {
		state, rv, err := l.read(ctx, u)
		if err == nil {
			var share contract.BudgetShare
			if share, err = change(state); err != nil {
				return State{}, err
			}
			if reflect.DeepEqual(share, state.Shares[shard]) {
				return state, nil // nothing to write
			}
			if err = l.write(ctx, u, rv, shard, share); err == nil {
				state.Shares[shard] = share
				return state, nil
			}
		}
		switch {
		case ctx.Err() != nil:
			return State{}, ctx.Err()
		case kubeapi.IsConflict(err):
			// Another shard wrote first: read again, after a short random pause that spreads the shards.
			if err := sleep.For(ctx, time.Duration(rand.Int64N(int64(50*time.Millisecond)))); err != nil {
				return State{}, err
			}
		case permanent(err) || failures+1 >= cmp.Or(l.Attempts, 5):
			return State{}, fmt.Errorf("budget ledger ConfigMap %s: %w", l.Name, err)
		default:
			failures++
			if err := sleep.For(ctx, time.Duration(1<<failures)*100*time.Millisecond); err != nil {
				return State{}, err
			}
		}
	}
}

func (l *ConfigMapLedger) read(ctx context.Context, u string) (State, string, error) {
	b, err := l.API.Do(ctx, http.MethodGet, u, "", nil)
	if err != nil {
		return State{}, "", err
	}
	var cm ledgerConfigMap
	if err := json.Unmarshal(b, &cm); err != nil {
		return State{}, "", fmt.Errorf("decoding ConfigMap %s: %w", l.Name, err)
	}
	state, err := parseLedger(cm.Data)
	if err != nil {
		return State{}, "", &ledgerError{fmt.Errorf("ConfigMap %s: %w", l.Name, err)}
	}
	return state, cm.Metadata.ResourceVersion, nil
}

func (l *ConfigMapLedger) write(ctx context.Context, u, rv string, shard int, share contract.BudgetShare) error {
	value, err := json.Marshal(share)
	if err != nil {
		return err
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]string{"resourceVersion": rv},
		"data":     map[string]string{contract.BudgetShareKey(shard): string(value)},
	})
	if err != nil {
		return err
	}
	_, err = l.API.Do(ctx, http.MethodPatch, u, "application/merge-patch+json", patch)
	return err
}

// parseLedger reads the caps and the shares of the ledger ConfigMap's data.
func parseLedger(data map[string]string) (State, error) {
	capsJSON, ok := data[contract.BudgetCapsKey]
	if !ok {
		return State{}, fmt.Errorf("no key %q (the operator writes the caps there)", contract.BudgetCapsKey)
	}
	caps, err := contract.ParseBudgetCaps(capsJSON)
	if err != nil {
		return State{}, fmt.Errorf("key %q: %w", contract.BudgetCapsKey, err)
	}
	s := State{Caps: caps, Shares: map[int]contract.BudgetShare{}}
	if v, ok := data[contract.BudgetEstimateKey]; ok {
		var share contract.BudgetShare
		if err := json.Unmarshal([]byte(v), &share); err != nil {
			return State{}, fmt.Errorf("key %q: %w", contract.BudgetEstimateKey, err)
		}
		s.Shares[EstimateShare] = share
	}
	for k, v := range data {
		idx, ok := strings.CutPrefix(k, "shard-")
		if !ok {
			continue
		}
		i, err := strconv.Atoi(idx)
		if err != nil {
			continue
		}
		var share contract.BudgetShare
		if err := json.Unmarshal([]byte(v), &share); err != nil {
			return State{}, fmt.Errorf("key %q: %w", k, err)
		}
		s.Shares[i] = share
	}
	return s, nil
}

// ledgerError is a ledger that cannot be read as it is; retrying does not help.
type ledgerError struct{ err error }

func (e *ledgerError) Error() string { return e.err.Error() }
func (e *ledgerError) Unwrap() error { return e.err }

// permanent reports whether a request failed for a reason a retry cannot fix: the ledger is unreadable,
// or the API server refused (403, 404) rather than failed.
func permanent(err error) bool {
	var le *ledgerError
	if errors.As(err, &le) {
		return true
	}
	var se *kubeapi.StatusError
	return errors.As(err, &se) && se.Code >= 400 && se.Code < 500 && se.Code != http.StatusTooManyRequests
}
