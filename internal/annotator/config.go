package annotator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/distillery-dev/distillery/internal/contract"
)

// LoadConfig reads and checks annotate.json. Its errors are *Failure with ReasonInvalidInput.
func LoadConfig(path string) (contract.AnnotateConfig, error) {
	var cfg contract.AnnotateConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, invalidInput(fmt.Errorf("reading config: %w", err))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, invalidInput(fmt.Errorf("reading config %s: %w", path, err))
	}
	if err := checkConfig(cfg); err != nil {
		return cfg, invalidInput(fmt.Errorf("config %s: %w", path, err))
	}
	return cfg, nil
}

func checkConfig(cfg contract.AnnotateConfig) error {
	var errs []error
	need := func(ok bool, msg string) {
		if !ok {
			errs = append(errs, errors.New(msg))
		}
	}
	need(cfg.Shards > 0, "shards must be at least 1")
	need(cfg.Teacher.Endpoint != "", "teacher.endpoint is required")
	need(cfg.Teacher.Model != "", "teacher.model is required")
	need(cfg.Teacher.MaxRetries >= 0, "teacher.maxRetries must not be negative")
	need(cfg.Teacher.MaxResponseBytes >= 0, "teacher.maxResponseBytes must not be negative")
	need(cfg.Task.Type == contract.TaskClassification || cfg.Task.Type == contract.TaskGeneration,
		"task.type must be classification or generation")
	need(cfg.Task.Type != contract.TaskClassification || len(cfg.Task.Labels) > 0,
		"task.labels is required for classification")
	need(cfg.Dataset.InputField != "", "dataset.inputField is required")
	return errors.Join(errs...)
}
