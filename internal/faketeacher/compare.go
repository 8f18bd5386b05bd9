package faketeacher

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"regexp"
	"strconv"

	"github.com/distillery-dev/distillery/internal/contract"
)

// CompareMarker is the answer marker of the synthetic task.
const CompareMarker = "So the answer is"

// CompareLabels are the synthetic task's labels.
var CompareLabels = []string{"first", "second"}

// CompareTask is the synthetic task: which of two numbers is larger.
func CompareTask() contract.Task {
	return contract.Task{
		Type:         contract.TaskClassification,
		Instruction:  "Say which of the two numbers is larger. Explain your reasoning, then give the answer.",
		Labels:       CompareLabels,
		AnswerMarker: CompareMarker,
		Examples: []contract.Example{
			compareExample(17, 42), compareExample(908, 77), compareExample(3, 5),
		},
	}
}

func compareExample(a, b int) contract.Example {
	return contract.Example{Input: CompareInput(a, b), Rationale: CompareRationale(a, b), Label: CompareLabel(a, b)}
}

// CompareInput is the question for two numbers.
func CompareInput(a, b int) string { return fmt.Sprintf("First: %d\nSecond: %d", a, b) }

// CompareLabel is the correct label; ties go to "first".
func CompareLabel(a, b int) string {
	if b > a {
		return "second"
	}
	return "first"
}

// CompareRationale states both numbers and which is larger.
func CompareRationale(a, b int) string {
	big, small := a, b
	if b > a {
		big, small = b, a
	}
	return fmt.Sprintf("The first number is %d and the second number is %d. %d is larger than %d.", a, b, big, small)
}

// CompareAnswer is the teacher's full answer in the prompt's format.
func CompareAnswer(a, b int, marker string) string {
	return CompareRationale(a, b) + " " + marker + " " + CompareLabel(a, b) + "."
}

var compareQuestion = regexp.MustCompile(`First:\s*(-?\d+)\s*\n\s*Second:\s*(-?\d+)`)

// ParseCompareInput reads the two numbers of a synthetic question.
func ParseCompareInput(input string) (a, b int, ok bool) {
	m := compareQuestion.FindStringSubmatch(input)
	if m == nil {
		return 0, 0, false
	}
	a, errA := strconv.Atoi(m[1])
	b, errB := strconv.Atoi(m[2])
	return a, b, errA == nil && errB == nil
}

// CompareLine is one line of a synthetic dataset.
type CompareLine struct {
	ID    string `json:"id"`
	Input string `json:"input"`
	Label string `json:"label"`
}

// WriteCompareDataset writes n synthetic JSONL lines with ids "0".."n-1" and gold labels, reproducibly
// for a seed.
func WriteCompareDataset(w io.Writer, n int, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	enc := json.NewEncoder(w)
	for i := range n {
		a, b := rng.IntN(1000), rng.IntN(1000)
		if err := enc.Encode(CompareLine{ID: strconv.Itoa(i), Input: CompareInput(a, b), Label: CompareLabel(a, b)}); err != nil {
			return fmt.Errorf("writing synthetic line %d: %w", i, err)
		}
	}
	return nil
}
