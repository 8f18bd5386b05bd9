package controllers

import "time"

// Config is the operator's own configuration, from its command-line flags.
type Config struct {
	// AnnotatorImage runs annotation pods unless a job names its own image.
	AnnotatorImage string
	// TrainerImage (the student runtime) runs training pods and student servers unless a spec names one.
	TrainerImage string
	// AllowedImagePrefixes are the prefixes a per-stage image override must start with
	// (--allowed-image-prefixes); empty allows any image. See image_policy.go.
	AllowedImagePrefixes []string
	// PodStartGrace is how long a stage pod may wait on an error that can still recover (an image pull,
	// a missing Secret, a volume that does not mount) before the stage fails; 0 means the default (2m).
	PodStartGrace time.Duration
}

// DefaultPodStartGrace is the default of Config.PodStartGrace.
const DefaultPodStartGrace = 2 * time.Minute

func (c Config) podStartGrace() time.Duration {
	if c.PodStartGrace <= 0 {
		return DefaultPodStartGrace
	}
	return c.PodStartGrace
}
