package controllers

import (
	"bufio"
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"

	"k8s.io/utils/ptr"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/internal/contract"
	"github.com/distillery-dev/distillery/internal/secreturl"
)

// Paths inside stage pods (docs/workloads.md).
const (
	configDir          = "/etc/distillery"
	workspaceDir       = "/workspace"
	datasetMountDir    = "/data/train"
	evalMountDir       = "/data/eval"
	baseModelMountDir  = "/models/base"
	datasetFileName    = "train.jsonl"
	evalFileName       = "eval.jsonl"
	metricsFileName    = "metrics.json"
	annotateConfigKey  = "annotate.json"
	teacherAPIKeyEnv   = "DISTILLERY_TEACHER_API_KEY"
	defaultLabelPrefix = "[label] "
	defaultRatPrefix   = "[rationale] "
)

// datasetPath is where a data source's JSONL file appears in a stage pod.
func datasetPath(src v1alpha1.DataSource, mountDir, fileName string) string {
	if src.PersistentVolumeClaim != nil {
		return path.Join(mountDir, src.PersistentVolumeClaim.Path)
	}
	return path.Join(mountDir, fileName)
}

// evalPath is where spec.dataset.eval appears in a stage pod, or "" when it is not set.
func evalPath(dj *v1alpha1.DistillationJob) string {
	if dj.Spec.Dataset.Eval == nil {
		return ""
	}
	return datasetPath(*dj.Spec.Dataset.Eval, evalMountDir, evalFileName)
}

// StagePaths are where the stage programs find the job's files: in a stage pod (PodPaths), or in local
// folders when `distillery run` runs the same programs on one machine.
type StagePaths struct {
	// JobDir is the job run's own folder: annotations, checkpoints, the model, metrics.json, points/.
	JobDir string
	// CacheDir is the teacher answer cache that jobs share.
	CacheDir string
	// Dataset is the JSONL of spec.dataset; Eval that of spec.dataset.eval, empty when unset.
	Dataset, Eval string
	// BaseModelDir is where a baseModelFrom directory (spec.student's, or a sweep's) is.
	BaseModelDir func(v1alpha1.VolumeFileRef) string
}

// PodPaths are the job's paths inside its stage pods (docs/workloads.md).
func PodPaths(dj *v1alpha1.DistillationJob) StagePaths {
	return StagePaths{
		JobDir:       path.Join(workspaceDir, jobDir(dj)),
		CacheDir:     path.Join(workspaceDir, contract.CacheDir),
		Dataset:      datasetPath(dj.Spec.Dataset.DataSource, datasetMountDir, datasetFileName),
		Eval:         evalPath(dj),
		BaseModelDir: podBaseModelDir,
	}
}

// contractTask is the job's task in the contract's form, with the examples resolved.
func contractTask(dj *v1alpha1.DistillationJob, examples []contract.Example) contract.Task {
	return contract.Task{
		Type:         strings.ToLower(string(dj.Spec.Task.Type)),
		Instruction:  dj.Spec.Task.Instruction,
		Labels:       dj.Spec.Task.Labels,
		AnswerMarker: dj.Spec.Task.AnswerMarker,
		Examples:     examples,
	}
}

// InlineExamples converts spec.task.examples to the contract's form.
func InlineExamples(dj *v1alpha1.DistillationJob) []contract.Example {
	out := make([]contract.Example, 0, len(dj.Spec.Task.Examples))
	for _, e := range dj.Spec.Task.Examples {
		out = append(out, contract.Example{Input: e.Input, Rationale: e.Rationale, Label: e.Label})
	}
	return out
}

// ParseExamplesJSONL reads few-shot examples from the JSONL of spec.task.examplesFrom. Errors name the line.
func ParseExamplesJSONL(source, data string) ([]contract.Example, error) {
	var out []contract.Example
	sc := bufio.NewScanner(strings.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var e contract.Example
		if err := json.Unmarshal([]byte(text), &e); err != nil {
			return nil, fmt.Errorf("%s line %d: not a JSON object: %v", source, line, err)
		}
		if e.Input == "" || e.Rationale == "" || e.Label == "" {
			return nil, fmt.Errorf("%s line %d: an example needs input, rationale and label", source, line)
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no examples", source)
	}
	if len(out) > 32 {
		return nil, fmt.Errorf("%s holds %d examples; at most 32 are allowed", source, len(out))
	}
	return out, nil
}

// renderAnnotateConfig is annotate.json for the job's stage pods.
func renderAnnotateConfig(dj *v1alpha1.DistillationJob, examples []contract.Example) contract.AnnotateConfig {
	return RenderAnnotateConfig(dj, examples, PodPaths(dj))
}

// RenderAnnotateConfig is annotate.json for the job with its files at paths.
func RenderAnnotateConfig(dj *v1alpha1.DistillationJob, examples []contract.Example, paths StagePaths) contract.AnnotateConfig {
	s := dj.Spec
	t := contract.Teacher{
		// Admission refuses keys in the endpoint; an object admitted before that rule still never has
		// one copied into the ConfigMap.
		Endpoint:       secreturl.Redacted(s.Teacher.Endpoint),
		Model:          s.Teacher.Model,
		MaxConcurrency: int(s.Teacher.MaxConcurrency),
		Temperature:    parseDecimal(s.Teacher.Temperature, 0),
		MaxTokens:      int(s.Teacher.MaxTokens),
		// A bound on what one answer may cost in memory, from what max_tokens allows.
		MaxResponseBytes: contract.MaxResponseBytes(int(s.Teacher.MaxTokens)),
		TimeoutSeconds:   int(s.Teacher.TimeoutSeconds),
		MaxRetries:       int(ptr.Deref(s.Teacher.MaxRetries, 5)),
	}
	if s.Teacher.APIKeySecretRef != nil {
		t.APIKeyEnv = teacherAPIKeyEnv
	}
	if s.Teacher.RequestsPerMinute != nil {
		t.RequestsPerMinute = int(*s.Teacher.RequestsPerMinute)
	}
	return contract.AnnotateConfig{
		Job:     dj.Name,
		JobUID:  string(dj.UID),
		Shards:  int(s.Annotation.Shards),
		Teacher: t,
		Task:    contractTask(dj, examples),
		Dataset: contract.DatasetRef{
			Path:        paths.Dataset,
			IDField:     s.Dataset.IDField,
			InputField:  s.Dataset.InputField,
			LabelField:  s.Dataset.LabelField,
			MaxExamples: int(ptr.Deref(s.Dataset.MaxExamples, 0)),
			Seed:        int64(s.Training.Seed),
			EvalPath:    paths.Eval,
		},
		Filter: contract.Filter{DropLabelMismatch: ptr.Deref(s.Annotation.Filter.DropLabelMismatch, true)},
		Output: contract.AnnotateOut{
			JobDir:   paths.JobDir,
			Dir:      path.Join(paths.JobDir, "annotations"),
			CacheDir: paths.CacheDir,
		},
		Budget: renderBudget(dj),
	}
}

// renderTrainConfig is the training config of one training run: train.json for a single run, or
// train-<index>.json for a sweep's point, which trains its own fraction, mode, weight, base model and
// seed into its own folder (points/<index>) and leaves the report ConfigMap to the report Job.
func renderTrainConfig(dj *v1alpha1.DistillationJob, examples []contract.Example, p trainingPoint) contract.TrainConfig {
	return renderTrainConfigAt(dj, examples, p, PodPaths(dj))
}

// RenderTrainConfigs are the training configs of the job's runs with its files at paths, in index order:
// its single run's train.json, or one per sweep point.
func RenderTrainConfigs(dj *v1alpha1.DistillationJob, examples []contract.Example, paths StagePaths) []contract.TrainConfig {
	var out []contract.TrainConfig
	for _, p := range trainingPoints(dj) {
		out = append(out, renderTrainConfigAt(dj, examples, p, paths))
	}
	return out
}

func renderTrainConfigAt(dj *v1alpha1.DistillationJob, examples []contract.Example, p trainingPoint, paths StagePaths) contract.TrainConfig {
	s := dj.Spec
	data := contract.TrainData{
		AnnotationsDir:     path.Join(paths.JobDir, "annotations"),
		EvalFraction:       parseDecimal(s.Dataset.EvalFraction, 0.1),
		IDField:            s.Dataset.IDField,
		InputField:         s.Dataset.InputField,
		LabelField:         s.Dataset.LabelField,
		ValidationFraction: parseDecimal(s.Training.ValidationFraction, 0.1),
		Fraction:           parseDecimal(p.fraction, 1),
		SubsetSeed:         int(p.seed),
	}
	data.EvalPath = paths.Eval
	dir := runDir(p, paths)
	out := contract.TrainOut{
		JobDir:        paths.JobDir,
		CheckpointDir: path.Join(dir, "checkpoints"),
		ModelDir:      path.Join(dir, modelSubPath),
		MetricsPath:   path.Join(dir, metricsFileName),
	}
	var point *contract.TrainPoint
	if p.inSweep() {
		point = &contract.TrainPoint{Index: p.index, Total: p.total}
	} else {
		out.ReportConfigMap = contract.ReportConfigMapName(dj.Name)
	}
	return contract.TrainConfig{
		Job:     dj.Name,
		JobUID:  string(dj.UID),
		Student: contract.Student{BaseModel: studentRef(p.student, paths), Architecture: contractArchitecture(s.Student.Architecture)},
		Data:    data,
		Task: contract.TrainTask{
			Type:            strings.ToLower(string(s.Task.Type)),
			Labels:          s.Task.Labels,
			LabelPrefix:     defaultLabelPrefix,
			RationalePrefix: defaultRatPrefix,
		},
		Training: contract.Training{
			Mode:                    contractMode(p.mode),
			RationaleWeight:         parseDecimal(p.rationaleWeight, 1),
			Epochs:                  int(s.Training.Epochs),
			MaxSteps:                int(ptr.Deref(s.Training.MaxSteps, 0)),
			BatchSize:               int(s.Training.BatchSize),
			LearningRate:            parseDecimal(s.Training.LearningRate, 5e-5),
			MaxInputLength:          int(s.Training.MaxInputLength),
			MaxTargetLength:         int(s.Training.MaxTargetLength),
			Precision:               strings.ToLower(string(s.Training.Precision)),
			Seed:                    int(p.seed),
			CheckpointEverySteps:    int(s.Training.CheckpointEverySteps),
			EvalEverySteps:          int(s.Training.EvalEverySteps),
			Strategy:                contractStrategy(s.Training.Strategy),
			LoRA:                    contractLoRA(s.Training.LoRA),
			ActivationCheckpointing: s.Training.ActivationCheckpointing,
			Compile:                 s.Training.Compile,
			CUDAGraphs:              contractCUDAGraphs(s.Training.CUDAGraphs),
		},
		Output: out,
		Provenance: contract.TrainProvenance{
			TeacherModel: s.Teacher.Model,
			PromptHash:   contract.PromptHash(contractTask(dj, examples)),
			DatasetPath:  datasetDescription(dj),
		},
		Point: point,
	}
}

// renderReportConfig is report.json, the config of a sweep's report Job, with the pod's paths.
func renderReportConfig(dj *v1alpha1.DistillationJob) contract.ReportConfig {
	return RenderReportConfig(dj, PodPaths(dj))
}

// RenderReportConfig is a sweep's report config with the job's files at paths: the points that succeeded
// (from status.experiments), where their metrics are, and the point served (status.servedExperiment).
func RenderReportConfig(dj *v1alpha1.DistillationJob, paths StagePaths) contract.ReportConfig {
	succeeded := map[int]bool{}
	for _, row := range dj.Status.Experiments {
		succeeded[int(row.Index)] = row.State == v1alpha1.ExperimentSucceeded
	}
	cfg := contract.ReportConfig{
		JobDir:          paths.JobDir,
		Points:          []contract.ReportPoint{},
		ServedIndex:     servedTrainingPoint(dj).index,
		ReportConfigMap: contract.ReportConfigMapName(dj.Name),
	}
	for _, p := range trainingPoints(dj) {
		if !succeeded[p.index] {
			continue
		}
		cfg.Points = append(cfg.Points, contract.ReportPoint{
			Index: p.index, MetricsPath: path.Join(runDir(p, paths), metricsFileName),
			Mode: contractMode(p.mode), RationaleWeight: parseDecimal(p.rationaleWeight, 1),
			Fraction: parseDecimal(p.fraction, 1), Seed: int(p.seed), BaseModel: studentRef(p.student, paths),
		})
	}
	return cfg
}

// runDir is a training run's folder at paths: the job folder for a single run, points/<index> in it for
// a sweep's point.
func runDir(p trainingPoint, paths StagePaths) string {
	if p.inSweep() {
		return path.Join(paths.JobDir, contract.PointDir(p.index))
	}
	return paths.JobDir
}

// podBaseModelDir is where a baseModelFrom directory is mounted in a training pod.
func podBaseModelDir(from v1alpha1.VolumeFileRef) string {
	return path.Join(baseModelMountDir, from.Path)
}

// studentRef is a run's hub id, or the directory of its baseModelFrom at paths.
func studentRef(s v1alpha1.ExperimentStudent, paths StagePaths) string {
	if from := s.BaseModelFrom; from != nil {
		return paths.BaseModelDir(*from)
	}
	return s.BaseModel
}

// datasetDescription names the dataset the way a user would find it again.
func datasetDescription(dj *v1alpha1.DistillationJob) string {
	d := dj.Spec.Dataset
	if d.PersistentVolumeClaim != nil {
		return fmt.Sprintf("pvc/%s/%s", d.PersistentVolumeClaim.ClaimName, d.PersistentVolumeClaim.Path)
	}
	return fmt.Sprintf("configmap/%s/%s", d.ConfigMap.Name, d.ConfigMap.Key)
}

// contractCUDAGraphs is train.json's cudaGraphs: "off" only when the spec says Off.
func contractCUDAGraphs(m v1alpha1.CUDAGraphsMode) string {
	if m == v1alpha1.CUDAGraphsOff {
		return contract.CUDAGraphsOff
	}
	return contract.CUDAGraphsAuto
}

func contractStrategy(s v1alpha1.TrainingStrategy) string {
	if s == v1alpha1.TrainingStrategyFSDP {
		return contract.StrategyFSDP
	}
	return contract.StrategyDDP
}

// contractLoRA is spec.training.lora in train.json's form (the schema's defaults where a field is unset).
func contractLoRA(l *v1alpha1.LoRASpec) *contract.LoRA {
	if l == nil {
		return nil
	}
	rank := int(l.Rank)
	if rank == 0 {
		rank = 16
	}
	return &contract.LoRA{Rank: rank, Alpha: parseDecimal(l.Alpha, 32), Dropout: parseDecimal(l.Dropout, 0.05),
		TargetModules: l.TargetModules}
}

func contractArchitecture(a v1alpha1.Architecture) string {
	if a == v1alpha1.ArchitectureCausalLM {
		return contract.ArchitectureCausal
	}
	return contract.ArchitectureSeq2Seq
}

func contractMode(m v1alpha1.TrainingMode) string {
	switch m {
	case v1alpha1.TrainingModeStandard:
		return contract.ModeStandard
	case v1alpha1.TrainingModeSingleTask:
		return contract.ModeSingleTask
	default:
		return contract.ModeStepByStep
	}
}

// parseDecimal reads a decimal string the schema already validated; def covers an unset field.
func parseDecimal(s string, def float64) float64 {
	if s == "" {
		return def
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return def
	}
	return v
}
