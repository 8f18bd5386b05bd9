package localrun

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/internal/admission"
)

// LoadJob reads the DistillationJob of a YAML file and admits it as the cluster would
// (internal/admission): the CRD's defaults filled in, its schema and CEL rules checked, with the messages
// kubectl apply would print. Other kinds in the file are left alone: a ConfigMap next to the job belongs to
// the cluster.
func LoadJob(ctx context.Context, file string) (*v1alpha1.DistillationJob, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	set, err := admission.Distillery()
	if err != nil {
		return nil, err
	}
	docs, err := set.CreateAll(ctx, data, "default")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var jobs []*v1alpha1.DistillationJob
	for _, d := range docs {
		if d.Object == nil || d.Object.GetKind() != "DistillationJob" {
			continue
		}
		if d.Err != nil {
			return nil, fmt.Errorf("%s", admission.KubectlMessage(d.Err, file))
		}
		var dj v1alpha1.DistillationJob
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(d.Object.Object, &dj); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", file, d.Describe(), err)
		}
		jobs = append(jobs, &dj)
	}
	switch len(jobs) {
	case 0:
		return nil, fmt.Errorf("%s holds no DistillationJob", file)
	case 1:
		return jobs[0], nil
	}
	return nil, fmt.Errorf("%s holds %d DistillationJobs; put each in its own file", file, len(jobs))
}

// localUID stands in for the job's UID, which names the job run whose files a folder holds
// (contract.ClaimJobDir). In a cluster a changed spec is a new object with a new UID; here it is a hash of
// the spec fields that are immutable in the cluster, so a rerun of the same YAML resumes its own files
// and a changed teacher, task, dataset, annotation, student or training setting never does. The teacher
// budget is left out: it may change in a cluster too, and a run again with a larger one resumes.
func localUID(dj *v1alpha1.DistillationJob) string {
	s := dj.Spec
	teacher := s.Teacher
	teacher.Budget = nil
	b, _ := json.Marshal([]any{teacher, s.Task, s.Dataset, s.Annotation, s.Student, s.Training, s.Experiments})
	sum := sha256.Sum256(b)
	return "local-" + hex.EncodeToString(sum[:8])
}
