// Package faketeacher is an OpenAI-compatible chat completion server that stands in for a teacher LLM:
// in tests (scriptable per request, with every failure a real server shows) and as the demo teacher a
// local cluster runs (cmd/demo-teacher). It answers a synthetic task it can compute, "which of two
// numbers is larger", in the few-shot chain-of-thought format, so a demo distillation has real targets.
package faketeacher
