package localrun

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"

	"k8s.io/apimachinery/pkg/types"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/controllers"
	"github.com/distillery-dev/distillery/internal/contract"
	"github.com/distillery-dev/distillery/internal/secreturl"
)

// Plan is a job made ready to run on this machine: admitted as the cluster would, its stage configs
// rendered with this machine's folders.
type Plan struct {
	Job      *v1alpha1.DistillationJob
	Layout   Layout
	Annotate contract.AnnotateConfig
	// Train is the single run's train.json; for a sweep, its point 0's.
	Train contract.TrainConfig
	// Points are a sweep's training configs, train-<index>.json in index order (RenderTrainConfigs); nil
	// for a single run.
	Points []contract.TrainConfig
	// Paths are the job's files here, for the renderers (the sweep's report config).
	Paths controllers.StagePaths
	// APIKey is the teacher's key, from the variable annotate.json names.
	APIKey string
}

// NewPlan loads the job of o.JobFile and renders its configs; it writes nothing.
func NewPlan(ctx context.Context, o Options) (Plan, error) {
	dj, err := LoadJob(ctx, o.JobFile)
	if err != nil {
		return Plan{}, err
	}
	l, err := NewLayout(o.OutputDir, o.DataDir, dj.Name)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Job: dj, Layout: l}
	var runs []contract.TrainConfig
	if p.Annotate, runs, p.Paths, err = render(dj, l, o.TeacherEndpoint); err != nil {
		return p, err
	}
	p.Train = runs[0]
	if dj.Spec.Experiments != nil {
		p.Points = runs
	}
	p.APIKey, err = teacherKey(p.Annotate)
	return p, err
}

// render is annotate.json and the training configs (train.json, or a sweep's train-<index>.json in
// index order) for the job, from the operator's own renderers with this run's folders, the endpoint
// override applied.
func render(dj *v1alpha1.DistillationJob, l Layout, endpoint string) (contract.AnnotateConfig, []contract.TrainConfig, controllers.StagePaths, error) {
	var a contract.AnnotateConfig
	paths, err := l.StagePaths(dj)
	if err != nil {
		return a, nil, paths, err
	}
	examples, err := l.Examples(dj)
	if err != nil {
		return a, nil, paths, err
	}
	dj = dj.DeepCopy()
	uid := localUID(dj)
	dj.UID = types.UID(uid)
	a = controllers.RenderAnnotateConfig(dj, examples, paths)
	if endpoint != "" {
		if err := checkEndpoint(endpoint); err != nil {
			return a, nil, paths, err
		}
		a.Teacher.Endpoint = endpoint
	}
	return a, controllers.RenderTrainConfigs(dj, examples, paths), paths, nil
}

// completionsPath is a URL that names the route instead of the base URL.
var completionsPath = regexp.MustCompile(`/(chat/)?completions/*$`)

// checkEndpoint holds --teacher-endpoint to spec.teacher.endpoint's admission rules. Its errors never
// repeat the URL, which might carry a key.
func checkEndpoint(endpoint string) error {
	u, err := url.Parse(endpoint)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return errors.New("--teacher-endpoint must be an http:// or https:// URL")
	case secreturl.Redacted(endpoint) != endpoint:
		return errors.New("--teacher-endpoint must not carry credentials, a query string or a fragment: " +
			"with spec.teacher.apiKeySecretRef set, the key is read from $" + teacherKeyEnv)
	case completionsPath.MatchString(u.Path):
		return errors.New("--teacher-endpoint must be the base URL ending in /v1, not .../chat/completions: requests go to endpoint + /chat/completions")
	}
	return nil
}

// teacherKeyEnv is the variable annotate.json names when spec.teacher.apiKeySecretRef is set.
const teacherKeyEnv = "DISTILLERY_TEACHER_API_KEY"

// teacherKey reads the API key from the variable annotate.json names (a cluster fills it from
// spec.teacher.apiKeySecretRef; here the user exports it).
func teacherKey(cfg contract.AnnotateConfig) (string, error) {
	if cfg.Teacher.APIKeyEnv == "" {
		return "", nil
	}
	key := os.Getenv(cfg.Teacher.APIKeyEnv)
	if key == "" {
		return "", fmt.Errorf("spec.teacher.apiKeySecretRef is set: export the teacher's API key as %s", cfg.Teacher.APIKeyEnv)
	}
	return key, nil
}
