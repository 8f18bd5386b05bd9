package annotator

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/distillery-dev/distillery/internal/contract"
)

func TestTerminationMessageFitsIn4KiB(t *testing.T) {
	res := WithFailure(contract.AnnotateResult{Stage: "annotate", Shard: 2, Total: 9},
		unreachable(errors.New("teacher http://t/v1 unreachable: "+strings.Repeat("é", 5000))))
	msg := TerminationMessage(res)
	if len(msg) > contract.MaxTerminationMessageBytes || strings.Count(string(msg), "\n") != 1 {
		t.Fatalf("message is %d bytes, %d lines", len(msg), strings.Count(string(msg), "\n"))
	}
	var back contract.AnnotateResult
	if err := json.Unmarshal(msg, &back); err != nil {
		t.Fatal(err)
	}
	if back.Reason != contract.ReasonTeacherUnreachable || !strings.HasPrefix(back.Error, "teacher http://t/v1 unreachable") || back.Total != 9 {
		t.Errorf("shortened message lost what matters: %+v", back)
	}
}
