// Package localrun runs a DistillationJob's whole pipeline on one machine without a cluster, from the
// same YAML (`distillery run`): the CRD's defaults and rules applied offline (internal/admission), the
// stage configs from the operator's own renderers (controllers.RenderAnnotateConfig, RenderTrainConfig)
// with local folders, every annotation shard in this process (internal/annotator, the code of
// cmd/annotator), and the student runtime (`python3 -m distillery_student train`) as a subprocess. Both
// resume from their files, so a run stopped with Ctrl-C continues where it was when run again.
package localrun
