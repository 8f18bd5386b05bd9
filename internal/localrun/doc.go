// Package localrun runs a DistillationJob's whole pipeline on one machine without a cluster, from the
// same YAML (`distillery run`): the CRD's defaults and rules applied offline (internal/admission), the
// stage configs from the operator's own renderers (controllers.RenderAnnotateConfig, RenderTrainConfigs)
// with local folders, every annotation shard in this process (internal/annotator, the code of
// cmd/annotator), and the student runtime (`python3 -m distillery_student train`) as a subprocess: one,
// or for a sweep (spec.experiments) one per point, a few at once, then `distillery_student report`
// (sweep.go). All resume from their files, so a run stopped with Ctrl-C continues where it was when run
// again.
package localrun
