package localrun

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/internal/contract"
)

// trainProgressInterval is the trainer's --progress-interval here, in seconds.
const trainProgressInterval = "1"

// train runs `python -m distillery_student train` on a training config (train.json, or a sweep point's), as the training pod would, with its
// output in the run's train log and its progress on the bar. The trainer resumes from its newest
// checkpoint by itself.
func train(ctx context.Context, py Python, f trainFiles, dj *v1alpha1.DistillationJob, bar *stageBar) (contract.TrainResult, error) {
	args := []string{"train", "--config", f.config, "--termination-log", f.termination,
		"--progress-interval", trainProgressInterval}
	if g := dj.Spec.Training.GPUsPerWorker; g != nil && *g == 0 {
		args = append(args, "--device", "cpu") // gpusPerWorker 0 trains on a CPU in a cluster too
	}
	logs, err := os.OpenFile(f.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return contract.TrainResult{}, err
	}
	defer logs.Close()
	_ = os.Remove(f.termination)

	cmd := py.Command(ctx, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return contract.TrainResult{}, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return contract.TrainResult{}, fmt.Errorf("starting the trainer: %w", err)
	}
	followTrainer(out, logs, bar)
	waitErr := cmd.Wait()

	res, readErr := readTrainResult(f.termination)
	switch {
	case ctx.Err() != nil:
		return res, ctx.Err()
	case waitErr != nil && res.Error != "":
		return res, fmt.Errorf("%s failed (%s): %s (log: %s)", f.what, orUnknown(res.Reason), res.Error, f.log)
	case waitErr != nil:
		return res, fmt.Errorf("%s failed: the trainer %s (log: %s)", f.what, exitError(waitErr), f.log)
	case readErr != nil:
		return res, fmt.Errorf("the trainer wrote no summary: %w (log: %s)", readErr, f.log)
	}
	return res, nil
}

func orUnknown(reason string) string {
	if reason == "" {
		return "Error"
	}
	return reason
}

// followTrainer copies the trainer's output to the log and its progress reports to the bar.
func followTrainer(out io.Reader, logs io.Writer, bar *stageBar) {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(logs, line)
		if p, ok := parseTrainProgress(line); ok && p.TotalSteps > 0 {
			bar.update(int64(p.Step), int64(p.TotalSteps))
		}
	}
	_, _ = io.Copy(logs, out) // a line over the buffer: keep the rest in the log
}

// trainProgressMarker starts the trainer's progress report in its log outside a cluster: "progress <key>
// {json}", the key train-0, or point-<i>-train-0 for a sweep's point (student/distillery_student/progress.py,
// docs/workloads.md "Progress").
const trainProgressMarker = "progress "

// parseTrainProgress reads rank 0's progress report from one line of the trainer's log.
func parseTrainProgress(line string) (contract.TrainProgress, bool) {
	i := strings.Index(line, trainProgressMarker)
	if i < 0 {
		return contract.TrainProgress{}, false
	}
	key, report, ok := strings.Cut(line[i+len(trainProgressMarker):], " ")
	rank0 := contract.TrainProgressKey(0)
	if !ok || (key != rank0 && !(strings.HasPrefix(key, "point-") && strings.HasSuffix(key, "-"+rank0))) {
		return contract.TrainProgress{}, false
	}
	var p contract.TrainProgress
	if err := json.Unmarshal([]byte(report), &p); err != nil {
		return contract.TrainProgress{}, false
	}
	return p, true
}

func readTrainResult(path string) (contract.TrainResult, error) {
	var res contract.TrainResult
	b, err := os.ReadFile(path)
	if err != nil {
		return res, err
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return res, fmt.Errorf("reading %s: %w", path, err)
	}
	return res, nil
}

// trained reports whether an earlier run of this job finished training: the model directory is complete
// (the trainer renames it into place whole) and the metrics are written.
func trained(cfg contract.TrainConfig) bool {
	_, errModel := os.Stat(filepath.Join(cfg.Output.ModelDir, "distillery.json"))
	_, errMetrics := os.Stat(cfg.Output.MetricsPath)
	return errModel == nil && errMetrics == nil
}
