package main

import (
	"testing"

	"github.com/distillery-dev/distillery/internal/contract"
)

func TestExitCode(t *testing.T) {
	cases := []struct {
		name string
		res  contract.AnnotateResult
		want int
	}{
		{"bad input is permanent", contract.AnnotateResult{Reason: contract.ReasonInvalidInput}, contract.ExitCodePermanent},
		{"a teacher that never answered is permanent", contract.AnnotateResult{Reason: contract.ReasonTeacherUnreachable}, contract.ExitCodePermanent},
		{"an outage mid-shard is retried", contract.AnnotateResult{Reason: contract.ReasonTeacherUnreachable, OK: 12}, 1},
		{"other failures are retried", contract.AnnotateResult{}, 1},
	}
	for _, c := range cases {
		if got := exitCode(c.res); got != c.want {
			t.Errorf("%s: exitCode = %d, want %d", c.name, got, c.want)
		}
	}
}
