package admission

import (
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KubectlMessage is what `kubectl apply -f source` prints for an error of a create (without the
// trailing newline), after kubectl's own formatting (k8s.io/kubectl/pkg/cmd/util: AddSourceToErr,
// checkErr, StandardErrorMessage): "The DistillationJob "x" is invalid: ..." with one cause on the line
// or one per line after "* ", and "Error from server (BadRequest): error when creating ..." for
// other refusals.
func KubectlMessage(err error, source string) string {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return fmt.Sprintf("error: %s: %v", source, err)
	}
	st := status.Status()
	if st.Reason == metav1.StatusReasonInvalid && st.Details != nil {
		prefix := fmt.Sprintf("The %s %q is invalid", st.Details.Kind, st.Details.Name)
		causes := dedupedCauses(st.Details.Causes)
		switch len(causes) {
		case 0:
			return prefix
		case 1:
			return prefix + ": " + causes[0]
		}
		return prefix + ": \n* " + strings.Join(causes, "\n* ")
	}
	msg := fmt.Sprintf("error when creating %q: %s", source, st.Message)
	if st.Reason != "" {
		return fmt.Sprintf("Error from server (%s): %s", st.Reason, msg)
	}
	return "Error from server: " + msg
}

// dedupedCauses are "field: message" lines, each once, in order (kubectl's statusCausesToAggrError).
func dedupedCauses(causes []metav1.StatusCause) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range causes {
		line := fmt.Sprintf("%s: %s", c.Field, c.Message)
		if !seen[line] {
			seen[line] = true
			out = append(out, line)
		}
	}
	return out
}
