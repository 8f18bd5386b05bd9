package annotator

import (
	"fmt"

	"github.com/distillery-dev/distillery/internal/annotator/dataset"
	"github.com/distillery-dev/distillery/internal/annotator/parse"
	"github.com/distillery-dev/distillery/internal/contract"
)

// Judge turns the teacher's answer into a record. Only an answer with a rationale and a valid label that
// agrees with the gold label (when dropLabelMismatch asks for it) is ok.
func Judge(cfg contract.AnnotateConfig, item dataset.Item, content string, usage contract.Usage) contract.Record {
	rec := baseRecord(item, usage)
	ans, err := parse.Parse(cfg.Task, content)
	if err != nil {
		rec.Status, rec.Error = contract.StatusUnparseable, err.Error()
		return rec
	}
	rec.TeacherLabel, rec.Rationale = ans.Label, ans.Rationale
	if cfg.Filter.DropLabelMismatch && item.Gold != "" &&
		contract.NormalizeLabel(item.Gold) != contract.NormalizeLabel(ans.Label) {
		rec.Status = contract.StatusLabelMismatch
		rec.Error = fmt.Sprintf("teacher label %q differs from gold label %q", ans.Label, item.Gold)
		return rec
	}
	rec.Status = contract.StatusOK
	return rec
}

// tooLong is the record of an answer over teacher.maxResponseBytes: unparseable, since it was not read.
// Its tokens are unknown (the usage was in the part not read).
func tooLong(item dataset.Item, err error) contract.Record {
	rec := baseRecord(item, contract.Usage{})
	rec.Status, rec.Error = contract.StatusUnparseable, err.Error()
	return rec
}

// teacherError is the record of an input the teacher refused or kept failing on.
func teacherError(item dataset.Item, err error) contract.Record {
	rec := baseRecord(item, contract.Usage{})
	rec.Status, rec.Error = contract.StatusTeacherError, err.Error()
	return rec
}

func baseRecord(item dataset.Item, usage contract.Usage) contract.Record {
	return contract.Record{ID: item.ID, Input: item.Input, GoldLabel: item.Gold, Usage: usage}
}
