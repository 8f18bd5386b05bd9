package controllers

// Config is the operator's own configuration, from its command-line flags.
type Config struct {
	// AnnotatorImage runs annotation pods unless a job names its own image.
	AnnotatorImage string
	// TrainerImage (the student runtime) runs training pods and student servers unless a spec names one.
	TrainerImage string
	// AllowedImagePrefixes are the prefixes a per-stage image override must start with
	// (--allowed-image-prefixes); empty allows any image. See image_policy.go.
	AllowedImagePrefixes []string
}
