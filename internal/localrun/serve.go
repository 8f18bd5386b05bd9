package localrun

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// ServeOptions is one `distillery serve`.
type ServeOptions struct {
	// Dir is a model directory (save_pretrained + distillery.json), or a run folder holding model/.
	Dir    string
	Host   string
	Port   int
	Python string
	// Name is the model id of the OpenAI routes; default the job's name from distillery.json.
	Name string
	// Args are passed on to `python -m distillery_student serve`.
	Args   []string
	Stdout io.Writer
	Stderr io.Writer
}

// ModelDir finds the model directory in dir: dir itself, or dir/model of a run folder, or the model
// its summary.json names (a sweep's served point).
func ModelDir(dir string) (string, error) {
	dirs := []string{dir, filepath.Join(dir, "model")}
	var sum struct {
		ModelDir string `json:"modelDir"`
	}
	if b, err := os.ReadFile(filepath.Join(dir, "summary.json")); err == nil && json.Unmarshal(b, &sum) == nil && sum.ModelDir != "" {
		dirs = append(dirs, sum.ModelDir)
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "distillery.json")); err == nil {
			return filepath.Abs(d)
		}
	}
	return "", fmt.Errorf("%s holds no model (no distillery.json in it or in %s): give the model directory or the run folder of `distillery run`",
		dir, filepath.Join(dir, "model"))
}

// Serve runs the student server of the student runtime on the model until ctx ends, then stops it with
// SIGTERM (it drains).
func Serve(ctx context.Context, o ServeOptions) error {
	model, err := ModelDir(o.Dir)
	if err != nil {
		return err
	}
	name := o.Name
	if name == "" {
		name = modelJob(model)
	}
	py, err := FindPython(ctx, o.Python)
	if err != nil {
		return err
	}
	args := []string{"serve", "--model", model, "--host", o.Host, "--port", strconv.Itoa(o.Port), "--drain-delay", "0"}
	if name != "" {
		args = append(args, "--served-model-name", name)
	}
	cmd := py.Command(ctx, append(args, o.Args...)...)
	cmd.Stdout, cmd.Stderr = o.Stdout, o.Stderr
	fmt.Fprintf(o.Stderr, "serving %s on http://%s:%d: POST /v1/predict {\"inputs\":[...]}, the OpenAI API under /v1 (model %q)\n",
		model, o.Host, o.Port, name)
	err = cmd.Run()
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("the student server %s", exitError(err))
	}
	return nil
}

// modelJob is the job that made the model, from its distillery.json; "" when unknown.
func modelJob(model string) string {
	b, err := os.ReadFile(filepath.Join(model, "distillery.json"))
	if err != nil {
		return ""
	}
	var d struct {
		Job string `json:"job"`
	}
	_ = json.Unmarshal(b, &d)
	return d.Job
}
