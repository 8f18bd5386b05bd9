package localrun

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/controllers"
	"github.com/distillery-dev/distillery/internal/contract"
)

// Layout is where a local run reads and writes. The YAML stays the cluster's: a ConfigMap reference
// {name: N, key: K} reads DataDir/N/K and a PersistentVolumeClaim reference {claimName: C, path: P} reads
// DataDir/C/P.
type Layout struct {
	// RunDir is the job's folder (the job folder of the workspace in a cluster): job.json, config/,
	// annotations/, checkpoints/, model/, metrics.json, logs/.
	RunDir string
	// CacheDir is the teacher answer cache, shared by the runs under one output folder.
	CacheDir string
	// DataDir is the folder the job's ConfigMap and PVC references resolve in.
	DataDir string
}

// NewLayout is the layout of job name under outputDir (default ./distillery-runs), with absolute paths:
// the trainer runs as another process.
func NewLayout(outputDir, dataDir, name string) (Layout, error) {
	out, err := filepath.Abs(outputDir)
	if err != nil {
		return Layout{}, err
	}
	data, err := filepath.Abs(dataDir)
	if err != nil {
		return Layout{}, err
	}
	return Layout{RunDir: filepath.Join(out, name), CacheDir: filepath.Join(out, ".cache"), DataDir: data}, nil
}

// Files of a run beside the stage programs' own (contract.ClaimJobDir's job.json, annotations/, ...).
func (l Layout) configDir() string      { return filepath.Join(l.RunDir, "config") }
func (l Layout) logDir() string         { return filepath.Join(l.RunDir, "logs") }
func (l Layout) annotateConfig() string { return filepath.Join(l.configDir(), "annotate.json") }
func (l Layout) annotateLog() string    { return filepath.Join(l.logDir(), "annotate.log") }
func (l Layout) summary() string        { return filepath.Join(l.RunDir, "summary.json") }
func (l Layout) report() string         { return filepath.Join(l.RunDir, "report.json") }
func (l Layout) reportPlot() string     { return filepath.Join(l.RunDir, "report.svg") }
func (l Layout) jobStamp() string       { return filepath.Join(l.RunDir, contract.JobFileName) }
func (l Layout) reportConfig() string   { return filepath.Join(l.configDir(), contract.ReportConfigKey) }
func (l Layout) reportLog() string      { return filepath.Join(l.logDir(), "report.log") }
func (l Layout) reportTermination() string {
	return filepath.Join(l.logDir(), "termination-report.json")
}

// trainFiles are a training run's name in messages, its config, log and trainer summary: train.json, logs/train.log and
// logs/termination-train.json for a single run, train-<index>.json, train-<index>.log and
// termination-train-<index>.json for a sweep's point (the config is named as the operator's ConfigMap key).
type trainFiles struct{ what, config, log, termination string }

func (l Layout) trainFiles(index int) trainFiles {
	what, suffix := "training", ""
	if index >= 0 {
		what, suffix = fmt.Sprintf("training point %d", index), fmt.Sprintf("-%d", index)
	}
	return trainFiles{
		what:        what,
		config:      filepath.Join(l.configDir(), contract.TrainConfigKey(index)),
		log:         filepath.Join(l.logDir(), "train"+suffix+".log"),
		termination: filepath.Join(l.logDir(), "termination-train"+suffix+".json"),
	}
}

// pointIndex is a training config's point in its sweep, or -1 for a single run (contract.TrainConfigKey).
func pointIndex(cfg contract.TrainConfig) int {
	if cfg.Point == nil {
		return -1
	}
	return cfg.Point.Index
}
func (l Layout) configMapFile(r v1alpha1.ConfigMapKeyRef) string {
	return filepath.Join(l.DataDir, r.Name, r.Key)
}
func (l Layout) claimFile(r v1alpha1.VolumeFileRef) string {
	return filepath.Join(l.DataDir, r.ClaimName, r.Path)
}

// StagePaths are the job's files for the renderers the operator uses (controllers.RenderAnnotateConfig,
// RenderTrainConfig). Every input must exist; errors name the spec field and the file.
func (l Layout) StagePaths(dj *v1alpha1.DistillationJob) (controllers.StagePaths, error) {
	s := dj.Spec
	p := controllers.StagePaths{JobDir: l.RunDir, CacheDir: l.CacheDir, BaseModelDir: l.claimFile}
	var err error
	if p.Dataset, err = l.source("spec.dataset", s.Dataset.DataSource); err != nil {
		return p, err
	}
	if s.Dataset.Eval != nil {
		if p.Eval, err = l.source("spec.dataset.eval", *s.Dataset.Eval); err != nil {
			return p, err
		}
	}
	if from := s.Student.BaseModelFrom; from != nil {
		if err := mustExist("spec.student.baseModelFrom", l.claimFile(*from), true); err != nil {
			return p, err
		}
	}
	return p, nil
}

// source is the local file of a data source.
func (l Layout) source(field string, src v1alpha1.DataSource) (string, error) {
	if src.PersistentVolumeClaim != nil {
		f := l.claimFile(*src.PersistentVolumeClaim)
		return f, mustExist(field+".persistentVolumeClaim", f, false)
	}
	f := l.configMapFile(*src.ConfigMap)
	return f, mustExist(field+".configMap", f, false)
}

// Examples are the job's few-shot examples: inline, or the JSONL that spec.task.examplesFrom names.
func (l Layout) Examples(dj *v1alpha1.DistillationJob) ([]contract.Example, error) {
	ref := dj.Spec.Task.ExamplesFrom
	if ref == nil {
		return controllers.InlineExamples(dj), nil
	}
	f := l.configMapFile(*ref)
	if err := mustExist("spec.task.examplesFrom", f, false); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(f)
	if err != nil {
		return nil, err
	}
	return controllers.ParseExamplesJSONL(fmt.Sprintf("spec.task.examplesFrom (%s)", f), string(data))
}

func mustExist(field, path string, dir bool) error {
	info, err := os.Stat(path)
	switch {
	case err != nil:
		return fmt.Errorf("%s reads %s here, which does not exist (ConfigMap {name, key} resolve to --data DIR/name/key, PVC {claimName, path} to DIR/claimName/path)", field, path)
	case dir && !info.IsDir():
		return fmt.Errorf("%s reads %s here, which is not a directory", field, path)
	case !dir && info.IsDir():
		return fmt.Errorf("%s reads %s here, which is a directory, not a file", field, path)
	}
	return nil
}
