package annotator

import "github.com/distillery-dev/distillery/internal/contract"

// Failure is an error that fails the shard with a machine-readable reason for the termination summary
// (contract.ReasonTeacherUnreachable, contract.ReasonInvalidInput).
type Failure struct {
	Reason string
	Err    error
}

func (f *Failure) Error() string { return f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

func invalidInput(err error) error { return &Failure{Reason: contract.ReasonInvalidInput, Err: err} }

func unreachable(err error) error {
	return &Failure{Reason: contract.ReasonTeacherUnreachable, Err: err}
}
